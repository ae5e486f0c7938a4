//! The Priority admission: a pod's `spec.priorityClassName` resolved to `spec.priority` (and
//! `spec.preemptionPolicy`) from its PriorityClass, or the global default class, as the
//! kube-apiserver's Priority plugin does; the scheduler orders and preempts by it. The two
//! system classes every cluster has are made at bootstrap ([`SYSTEM_CLASSES`]).

use serde_json::{Value, json};

use super::ApiState;
use super::status::{ApiError, Cause};
use crate::storage::ObjectKey;

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

/// Sets a new pod's `spec.priority` and `spec.preemptionPolicy` from its class. A class that
/// does not exist is refused (403, as Kubernetes); a pod that gives a priority different from
/// its class's is Invalid.
pub async fn admit_pod(state: &ApiState, pod: &mut Value) -> Result<(), ApiError> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let class_name = pod["spec"]["priorityClassName"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(str::to_owned);
    let class = match &class_name {
        Some(class_name) => {
            let stored = state
                .storage
                .get(&ObjectKey::new(RESOURCE, "", class_name))
                .await
                .map_err(|e| ApiError::from_storage(e, "scheduling.k8s.io", "priorityclasses"))?;
            match stored {
                Some(found) => Some(found.object),
                None => {
                    return Err(ApiError::forbidden(
                        "",
                        "pods",
                        &name,
                        &format!("no PriorityClass with name {class_name} was found"),
                    ));
                }
            }
        }
        None => global_default(state).await?,
    };
    let (value, policy) = match &class {
        Some(class) => (
            class["value"].as_i64().unwrap_or(0),
            class["preemptionPolicy"]
                .as_str()
                .unwrap_or("PreemptLowerPriority")
                .to_owned(),
        ),
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
        if let Some(class) = &class
            && class_name.is_none()
        {
            spec.insert(
                "priorityClassName".into(),
                class["metadata"]["name"].clone(),
            );
        }
        spec.entry("preemptionPolicy").or_insert(json!(policy));
    }
    Ok(())
}

/// The class marked `globalDefault: true`, if any (the one with the highest value when several).
async fn global_default(state: &ApiState) -> Result<Option<Value>, ApiError> {
    let page = state
        .storage
        .list(RESOURCE, None, None, 0)
        .await
        .map_err(|e| ApiError::from_storage(e, "scheduling.k8s.io", "priorityclasses"))?;
    Ok(page
        .items
        .into_iter()
        .map(|s| s.object)
        .filter(|c| c["globalDefault"] == json!(true))
        .max_by_key(|c| c["value"].as_i64().unwrap_or(0)))
}
