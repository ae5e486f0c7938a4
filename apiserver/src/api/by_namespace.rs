//! Objects of one kind held in memory by namespace and name for admission (the LimitRanges,
//! the quotas' hard keys): loaded at start and kept current by the storage hub's observer
//! (before a write is answered; other apiservers' writes arrive by NOTIFY), so that a create
//! reads none of them from the database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use serde_json::Value;

use crate::storage::{Change, EventType, Storage, StorageError};

/// What is kept of each object of a kind held by namespace.
pub trait Kept: Send + Sync + 'static {
    /// The storage resource of the kind.
    const RESOURCE: &'static str;
    /// What is kept of `object`.
    fn keep(object: &Value) -> Self;
}

/// The kept form of every object of `T`'s kind, by namespace, then name.
pub struct ByNamespace<T> {
    held: RwLock<HashMap<String, BTreeMap<String, T>>>,
}

impl<T> Default for ByNamespace<T> {
    fn default() -> Self {
        ByNamespace {
            held: RwLock::default(),
        }
    }
}

impl<T: Kept> ByNamespace<T> {
    /// Loads the objects in storage and follows their changes from now on.
    pub async fn attach(self: &Arc<Self>, storage: &Storage) -> Result<(), StorageError> {
        let registry = Arc::clone(self);
        storage.hub().observe(Arc::new(move |change: &Change| {
            if change.key.resource == T::RESOURCE {
                registry.apply(
                    &change.key.namespace,
                    &change.key.name,
                    (change.event != EventType::Deleted).then_some(&change.object),
                );
            }
        }));
        let page = storage.list(T::RESOURCE, None, None, 0).await?;
        for stored in page.items {
            let meta = &stored.object["metadata"];
            let namespace = meta["namespace"].as_str().unwrap_or_default();
            let name = meta["name"].as_str().unwrap_or_default();
            self.apply(namespace, name, Some(&stored.object));
        }
        Ok(())
    }

    /// Records `object` (`None`: deleted) as `namespace/name`.
    pub(crate) fn apply(&self, namespace: &str, name: &str, object: Option<&Value>) {
        // Every change to the map is one insert or remove: a panic elsewhere leaves it whole.
        let mut held = self.held.write().unwrap_or_else(PoisonError::into_inner);
        match object {
            Some(object) => {
                held.entry(namespace.to_owned())
                    .or_default()
                    .insert(name.to_owned(), T::keep(object));
            }
            None => {
                if let Some(of_namespace) = held.get_mut(namespace) {
                    of_namespace.remove(name);
                    if of_namespace.is_empty() {
                        held.remove(namespace);
                    }
                }
            }
        }
    }

    /// `read` applied to what is kept of `namespace`'s objects, in name order (none: empty).
    pub fn read<R>(
        &self,
        namespace: &str,
        read: impl FnOnce(&mut dyn Iterator<Item = &T>) -> R,
    ) -> R {
        let held = self.held.read().unwrap_or_else(PoisonError::into_inner);
        let mut items = held.get(namespace).into_iter().flat_map(BTreeMap::values);
        read(&mut items)
    }
}
