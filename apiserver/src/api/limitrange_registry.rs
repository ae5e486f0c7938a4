//! The LimitRanges of every namespace held in memory for the LimitRange admission, as the
//! PriorityClasses are ([`super::priority`]): loaded at start and kept current by the storage
//! hub's observer (before a write is answered; other apiservers' writes arrive by NOTIFY), so
//! a pod create reads no LimitRange from the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use super::limitrange::RESOURCE;
use crate::storage::{Change, EventType, Storage, StorageError};

/// The LimitRanges by namespace, then name.
#[derive(Debug, Default)]
pub struct LimitRanges {
    ranges: RwLock<HashMap<String, BTreeMap<String, Value>>>,
}

impl LimitRanges {
    /// Loads the LimitRanges in storage and follows their changes from now on.
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

    /// Records `object` (`None`: deleted) as the LimitRange `namespace/name`.
    fn apply(&self, namespace: &str, name: &str, object: Option<&Value>) {
        let Ok(mut ranges) = self.ranges.write() else {
            return;
        };
        match object {
            Some(object) => {
                ranges
                    .entry(namespace.to_owned())
                    .or_default()
                    .insert(name.to_owned(), object.clone());
            }
            None => {
                if let Some(held) = ranges.get_mut(namespace) {
                    held.remove(name);
                    if held.is_empty() {
                        ranges.remove(namespace);
                    }
                }
            }
        }
    }

    /// The LimitRanges of `namespace`, by name.
    pub fn of(&self, namespace: &str) -> Vec<Value> {
        self.ranges
            .read()
            .ok()
            .and_then(|r| {
                r.get(namespace)
                    .map(|held| held.values().cloned().collect())
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_their_namespace_and_go_when_deleted() {
        let held = LimitRanges::default();
        let range = serde_json::json!({"metadata": {"name": "r", "namespace": "a"}});
        held.apply("a", "r", Some(&range));
        assert_eq!(held.of("a"), vec![range]);
        assert!(held.of("b").is_empty());
        held.apply("a", "r", None);
        assert!(held.of("a").is_empty());
    }
}
