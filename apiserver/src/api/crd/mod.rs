//! Custom resources: the kinds CustomResourceDefinitions define, served beside the built-in
//! ones while the server runs.
//!
//! The [`CrdRegistry`] holds every served version of every CRD. It is filled from storage at
//! start and then follows every committed change to a CRD through the storage hub's observer,
//! which runs before the writer answers, so a client that created a CRD can use its kind in
//! the next request; on PostgreSQL the hub also carries other apiservers' changes. Deleting a
//! CRD deletes its objects in the same transaction ([`super::resource::deletion_ops`]).
//!
//! A custom kind's [`KindInfo`] is made once per identity (group, version, kind, plural,
//! scope) and lives for the process: the handlers take kinds as `&'static`. Schemas, printer
//! columns and subresources are looked up afresh on every request, so a CRD's update applies
//! at once.

pub mod admission;
pub mod columns;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use ferry_schema::kinds::KindInfo;
use ferry_schema::structural::{CrdVersion, served_versions};
use serde_json::Value;

use crate::storage::{Change, EventType, Storage, StorageError};

/// The storage resource of CustomResourceDefinitions.
pub const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// A custom kind as the handlers see it.
#[derive(Clone)]
pub struct CustomKind {
    /// Its identity, as for built-in kinds.
    pub info: &'static KindInfo,
    /// What its CRD says about this version.
    pub served: Arc<CrdVersion>,
}

type Identity = (String, String, String, String, bool);

/// The served versions of every CRD.
#[derive(Default)]
pub struct CrdRegistry {
    kinds: RwLock<Vec<CustomKind>>,
    infos: Mutex<HashMap<Identity, &'static KindInfo>>,
}

impl std::fmt::Debug for CrdRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrdRegistry")
            .field("kinds", &self.all().len())
            .finish()
    }
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

impl CrdRegistry {
    /// Loads the CRDs in storage and follows their changes from now on.
    pub async fn attach(self: &Arc<Self>, storage: &Storage) -> Result<(), StorageError> {
        let registry = Arc::clone(self);
        storage.hub().observe(Arc::new(move |change: &Change| {
            if change.key.resource == CRDS {
                match change.event {
                    EventType::Deleted => registry.remove(&change.key.name),
                    _ => registry.apply(&change.object),
                }
            }
        }));
        for stored in storage.list(CRDS, None, None, 0).await?.items {
            self.apply(&stored.object);
        }
        Ok(())
    }

    /// The kind identity of a served version (made once per identity).
    pub fn info(&self, v: &CrdVersion) -> &'static KindInfo {
        let identity = (
            v.group.clone(),
            v.version.clone(),
            v.kind.clone(),
            v.plural.clone(),
            v.namespaced,
        );
        let Ok(mut infos) = self.infos.lock() else {
            // A poisoned lock: make a fresh identity rather than fail the CRD.
            return Box::leak(Box::new(KindInfo::custom(
                leak(&v.group),
                leak(&v.version),
                leak(&v.kind),
                leak(&v.plural),
                &[],
                v.namespaced,
            )));
        };
        infos.entry(identity).or_insert_with(|| {
            let short: Vec<&'static str> = v.short_names.iter().map(|s| leak(s)).collect();
            Box::leak(Box::new(KindInfo::custom(
                leak(&v.group),
                leak(&v.version),
                leak(&v.kind),
                leak(&v.plural),
                Box::leak(short.into_boxed_slice()),
                v.namespaced,
            )))
        })
    }

    /// Serves what `crd` defines now (replacing what it defined before). A CRD that does not
    /// define a valid kind serves nothing (admission refuses such CRDs; this guards stored
    /// ones).
    pub fn apply(&self, crd: &Value) {
        let name = crd["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let versions = served_versions(crd).unwrap_or_default();
        let fresh: Vec<CustomKind> = versions
            .into_iter()
            .map(|v| CustomKind {
                info: self.info(&v),
                served: Arc::new(v),
            })
            .collect();
        if let Ok(mut kinds) = self.kinds.write() {
            kinds.retain(|k| k.served.crd != name);
            kinds.extend(fresh);
        }
    }

    /// Stops serving what the CRD `name` defined.
    pub fn remove(&self, name: &str) {
        if let Ok(mut kinds) = self.kinds.write() {
            kinds.retain(|k| k.served.crd != name);
        }
    }

    /// Every served custom kind version.
    pub fn all(&self) -> Vec<CustomKind> {
        self.kinds.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// The custom kind served at `group`/`version`/`plural`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<CustomKind> {
        self.all()
            .into_iter()
            .find(|k| k.info.group == group && k.info.version == version && k.info.plural == plural)
    }

    /// The custom kind of `apiVersion` + `kind`.
    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<CustomKind> {
        self.all()
            .into_iter()
            .find(|k| k.info.api_version() == api_version && k.info.kind == kind)
    }

    /// What the CRD says about a kind, when it is a custom one.
    pub fn of(&self, info: &KindInfo) -> Option<Arc<CrdVersion>> {
        self.all()
            .into_iter()
            .find(|k| {
                k.info.group == info.group
                    && k.info.version == info.version
                    && k.info.kind == info.kind
            })
            .map(|k| k.served)
    }

    /// The custom kinds of the CRD `name` (every served version).
    pub fn of_crd(&self, name: &str) -> Vec<CustomKind> {
        self.all()
            .into_iter()
            .filter(|k| k.served.crd == name)
            .collect()
    }
}
