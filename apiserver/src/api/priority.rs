//! The Priority admission: a pod's `spec.priorityClassName` resolved to `spec.priority` (and
//! `spec.preemptionPolicy`) from its PriorityClass, or the global default class, as the
//! kube-apiserver's Priority plugin does; the scheduler orders and preempts by it. The two
//! system classes every cluster has are made at bootstrap ([`SYSTEM_CLASSES`]).
//!
//! The classes are held in memory ([`PriorityClasses`]), loaded at start and kept current by
//! the storage hub's observer (before a write is answered; other apiservers' writes arrive by
//! NOTIFY), so a pod create reads no PriorityClass from the database.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::{Value, json};

use super::status::{ApiError, Cause};
use crate::storage::{Change, EventType, Storage, StorageError};

/// Storage resource of PriorityClasses.
const RESOURCE: &str = "scheduling.k8s.io/priorityclasses";

/// The classes Kubernetes creates on every cluster: `(name, value, description)`.
pub const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

/// What admission needs of one PriorityClass.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    value: i64,
    preemption_policy: String,
    global_default: bool,
}

impl Class {
    fn of(object: &Value) -> Class {
        Class {
            value: object["value"].as_i64().unwrap_or(0),
            preemption_policy: object["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .to_owned(),
            global_default: object["globalDefault"] == json!(true),
        }
    }
}

/// The PriorityClasses of the cluster, by name.
#[derive(Debug, Default)]
pub struct PriorityClasses {
    classes: RwLock<HashMap<String, Class>>,
}

impl PriorityClasses {
    /// Loads the classes in storage and follows their changes from now on.
    pub async fn attach(self: &Arc<Self>, storage: &Storage) -> Result<(), StorageError> {
        let registry = Arc::clone(self);
        storage.hub().observe(Arc::new(move |change: &Change| {
            if change.key.resource == RESOURCE
                && let Ok(mut classes) = registry.classes.write()
            {
                match change.event {
                    EventType::Deleted => {
                        classes.remove(&change.key.name);
                    }
                    _ => {
                        classes.insert(change.key.name.clone(), Class::of(&change.object));
                    }
                }
            }
        }));
        let page = storage.list(RESOURCE, None, None, 0).await?;
        if let Ok(mut classes) = self.classes.write() {
            for stored in page.items {
                let name = stored.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                classes.insert(name, Class::of(&stored.object));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Option<Class> {
        self.classes.read().ok()?.get(name).cloned()
    }

    /// The class marked `globalDefault: true`, if any (the highest value when several).
    fn global_default(&self) -> Option<(String, Class)> {
        let classes = self.classes.read().ok()?;
        classes
            .iter()
            .filter(|(_, c)| c.global_default)
            .max_by_key(|(_, c)| c.value)
            .map(|(n, c)| (n.clone(), c.clone()))
    }
}

/// Sets a new pod's `spec.priority` and `spec.preemptionPolicy` from its class. A class that
/// does not exist is refused (403, as Kubernetes); a pod that gives a priority different from
/// its class's is Invalid.
pub fn admit_pod(classes: &PriorityClasses, pod: &mut Value) -> Result<(), ApiError> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let class_name = pod["spec"]["priorityClassName"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let class = match &class_name {
        Some(class_name) => match classes.get(class_name) {
            Some(class) => Some((class_name.clone(), class)),
            None => {
                return Err(ApiError::forbidden(
                    "",
                    "pods",
                    &name,
                    &format!("no PriorityClass with name {class_name} was found"),
                ));
            }
        },
        None => classes.global_default(),
    };
    let (value, policy) = match &class {
        Some((_, class)) => (class.value, class.preemption_policy.clone()),
        None => (0, "PreemptLowerPriority".to_owned()),
    };
    if let Some(given) = pod["spec"]["priority"].as_i64()
        && given != value
    {
        return Err(ApiError::invalid(
            "",
            "Pod",
            &name,
            vec![Cause {
                reason: "FieldValueForbidden",
                field: "spec.priority".into(),
                message: "Forbidden: the integer value of priority must not be provided in pod spec; priority admission controller computed the value from the given PriorityClass name".into(),
            }],
        ));
    }
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("priority".into(), json!(value));
        if let Some((default_name, _)) = &class
            && class_name.is_none()
        {
            spec.insert("priorityClassName".into(), json!(default_name));
        }
        spec.entry("preemptionPolicy").or_insert(json!(policy));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(classes: &[(&str, i64, bool)]) -> PriorityClasses {
        let registry = PriorityClasses::default();
        if let Ok(mut map) = registry.classes.write() {
            for (name, value, global_default) in classes {
                let object = json!({"metadata": {"name": name}, "value": value, "globalDefault": global_default});
                map.insert((*name).to_owned(), Class::of(&object));
            }
        }
        registry
    }

    #[test]
    fn a_class_a_global_default_or_none() {
        let classes = registry(&[("high", 1000, false), ("usual", 10, true)]);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "high"}});
        admit_pod(&classes, &mut pod).expect("admitted");
        assert_eq!(pod["spec"]["priority"], 1000);
        assert_eq!(pod["spec"]["preemptionPolicy"], "PreemptLowerPriority");
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {}});
        admit_pod(&classes, &mut pod).expect("admitted");
        assert_eq!(pod["spec"]["priority"], 10);
        assert_eq!(pod["spec"]["priorityClassName"], "usual");
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {}});
        admit_pod(&registry(&[]), &mut pod).expect("admitted");
        assert_eq!(pod["spec"]["priority"], 0);
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "nope"}});
        assert_eq!(admit_pod(&classes, &mut pod).map_err(|e| e.code), Err(403));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"priorityClassName": "high", "priority": 5}});
        assert_eq!(admit_pod(&classes, &mut pod).map_err(|e| e.code), Err(422));
    }
}
