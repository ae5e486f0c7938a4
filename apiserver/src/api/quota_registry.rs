//! The hard-limit keys of every namespace's ResourceQuotas held in memory, as the LimitRanges
//! are ([`super::limitrange_registry`]): loaded at start and kept current by the storage hub's
//! observer. A create reads the quotas from storage (for their revisions) only when one of
//! its namespace limits something the new object uses, so a namespace without quotas, or
//! with quotas on other things, costs a create nothing.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use ferry_schema::quota::Usage;
use serde_json::Value;

use crate::storage::{Change, EventType, Storage, StorageError};

/// The storage resource of ResourceQuotas.
pub const RESOURCE: &str = "resourcequotas";

/// Each quota's `spec.hard` keys, by namespace, then name.
#[derive(Debug, Default)]
pub struct QuotaLimits {
    limits: RwLock<HashMap<String, BTreeMap<String, Vec<String>>>>,
}

impl QuotaLimits {
    /// Loads the quotas in storage and follows their changes from now on.
    pub async fn attach(self: &Arc<Self>, storage: &Storage) -> Result<(), StorageError> {
        let registry = Arc::clone(self);
        storage.hub().observe(Arc::new(move |change: &Change| {
            if change.key.resource == RESOURCE {
                registry.apply(
                    &change.key.namespace,
                    &change.key.name,
                    (change.event != EventType::Deleted).then_some(&change.object),
                );
            }
        }));
        let page = storage.list(RESOURCE, None, None, 0).await?;
        for stored in page.items {
            let meta = &stored.object["metadata"];
            let namespace = meta["namespace"].as_str().unwrap_or_default().to_owned();
            let name = meta["name"].as_str().unwrap_or_default().to_owned();
            self.apply(&namespace, &name, Some(&stored.object));
        }
        Ok(())
    }

    /// Records the quota `namespace/name` as `object` (`None`: deleted).
    fn apply(&self, namespace: &str, name: &str, object: Option<&Value>) {
        let Ok(mut limits) = self.limits.write() else {
            tracing::error!(namespace, name, "quota registry lock poisoned");
            return;
        };
        match object {
            Some(object) => {
                let keys = object["spec"]["hard"]
                    .as_object()
                    .map(|hard| hard.keys().cloned().collect())
                    .unwrap_or_default();
                limits
                    .entry(namespace.to_owned())
                    .or_default()
                    .insert(name.to_owned(), keys);
            }
            None => {
                if let Some(held) = limits.get_mut(namespace) {
                    held.remove(name);
                    if held.is_empty() {
                        limits.remove(namespace);
                    }
                }
            }
        }
    }

    /// Whether a quota of `namespace` limits something `requested` asks for.
    pub fn limits_any(&self, namespace: &str, requested: &Usage) -> bool {
        let Ok(limits) = self.limits.read() else {
            // Unknown: let admission read the quotas from storage.
            return true;
        };
        limits.get(namespace).is_some_and(|quotas| {
            quotas.values().flatten().any(|key| {
                requested
                    .get(key.as_str())
                    .is_some_and(|amount| !amount.is_zero())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schema::quantity::Quantity;

    #[test]
    fn a_namespace_is_limited_only_by_its_quotas_keys() {
        let held = QuotaLimits::default();
        let quota = serde_json::json!({"spec": {"hard": {"count/configmaps": "2"}}});
        held.apply("a", "q", Some(&quota));
        let configmap: Usage = [("count/configmaps".to_owned(), Quantity::from_units(1))].into();
        let secret: Usage = [("count/secrets".to_owned(), Quantity::from_units(1))].into();
        assert!(held.limits_any("a", &configmap));
        assert!(!held.limits_any("a", &secret));
        assert!(!held.limits_any("b", &configmap));
        held.apply("a", "q", None);
        assert!(!held.limits_any("a", &configmap));
    }
}
