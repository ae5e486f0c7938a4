//! The collector's actions: deleting a dependent whose owners are all gone (in the foreground
//! when an owner waits for it), dropping references to owners that are gone while others
//! remain, finishing foreground and orphaning deletions by removing their finalizer.
//!
//! An owner missing from the picture may only not have been seen yet: it is looked up on the
//! apiserver (by name, compared by uid) before anything is deleted for its absence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::discovery::ApiResource;
use serde_json::json;

use super::graph::{FOREGROUND, Graph, Node, ORPHAN, Work};
use crate::controllers::error::ControllerError;

/// What the collector needs: a client, the picture, and the resources by apiVersion and kind.
pub struct Collector {
    pub(super) client: kube::Client,
    pub(super) graph: Arc<Mutex<Graph>>,
    pub(super) kinds: Arc<Mutex<HashMap<(String, String), Kind>>>,
}

/// A kind the apiserver serves.
#[derive(Debug, Clone)]
pub struct Kind {
    /// Its resource.
    pub resource: Arc<ApiResource>,
    /// Namespaced, or cluster-scoped.
    pub namespaced: bool,
}

/// An owner, as far as its dependent is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Alive,
    Foreground,
    Gone,
}

impl Collector {
    fn api(&self, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, resource),
            None => Api::all_with(self.client.clone(), resource),
        }
    }

    fn node(&self, uid: &str) -> Option<Node> {
        self.graph.lock().ok()?.get(uid).cloned()
    }

    /// The objects that name `uid` as an owner, as last seen.
    fn dependents(&self, uid: &str) -> Vec<Node> {
        self.graph
            .lock()
            .map(|g| {
                g.dependents_of(uid)
                    .iter()
                    .filter_map(|d| g.get(d).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Does one piece of work.
    pub async fn run(&self, work: &Work) -> Result<(), ControllerError> {
        match work {
            Work::Dependent(uid) => self.dependent(uid).await,
            Work::Foreground(uid) => self.foreground(uid).await,
            Work::Orphan(uid) => self.orphan(uid).await,
        }
    }

    async fn owner_state(&self, dependent: &Node, owner: &OwnerReference) -> Owner {
        if let Some(n) = self.node(&owner.uid) {
            return if n.foreground() {
                Owner::Foreground
            } else {
                Owner::Alive
            };
        }
        let resource = self.kinds.lock().ok().and_then(|k| {
            k.get(&(owner.api_version.clone(), owner.kind.clone()))
                .cloned()
        });
        let Some(kind) = resource else {
            // A kind not (yet) discovered: keep the dependent, as Kubernetes does.
            tracing::warn!(owner = %owner.name, kind = %owner.kind, api_version = %owner.api_version, "owner of an unknown kind; keeping its dependent");
            return Owner::Alive;
        };
        let ns = if kind.namespaced {
            dependent.namespace.as_deref()
        } else {
            None
        };
        match self.api(&kind.resource, ns).get_opt(&owner.name).await {
            Ok(Some(o)) if o.metadata.uid.as_deref() == Some(owner.uid.as_str()) => {
                if o.metadata.deletion_timestamp.is_some()
                    && o.metadata
                        .finalizers
                        .iter()
                        .flatten()
                        .any(|f| f == FOREGROUND)
                {
                    Owner::Foreground
                } else {
                    Owner::Alive
                }
            }
            Ok(_) => Owner::Gone,
            Err(e) => {
                tracing::warn!(owner = %owner.name, error = %e, "could not look an owner up; keeping its dependent");
                Owner::Alive
            }
        }
    }

    async fn dependent(&self, uid: &str) -> Result<(), ControllerError> {
        let Some(node) = self.node(uid) else {
            return Ok(());
        };
        if node.deleting || node.owners.is_empty() {
            return Ok(());
        }
        let mut states = Vec::new();
        for owner in &node.owners {
            states.push(self.owner_state(&node, owner).await);
        }
        let what = format!("{} {}", node.resource.kind, node.name);
        let api = self.api(&node.resource, node.namespace.as_deref());
        if states.iter().all(|s| *s != Owner::Alive) {
            let policy = if states.contains(&Owner::Foreground) {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            };
            let params = DeleteParams {
                propagation_policy: Some(policy),
                preconditions: Some(Preconditions {
                    uid: Some(uid.to_owned()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            tracing::info!(object = %what, namespace = ?node.namespace, "deleting: its owners are gone");
            return match api.delete(&node.name, &params).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
                Err(e) => Err(ControllerError::api("delete", what, e)),
            };
        }
        if states.contains(&Owner::Gone) {
            let kept: Vec<&OwnerReference> = node
                .owners
                .iter()
                .zip(&states)
                .filter(|(_, s)| **s != Owner::Gone)
                .map(|(o, _)| o)
                .collect();
            tracing::info!(object = %what, "dropping references to owners that are gone");
            self.patch_meta(&api, &node, json!({"ownerReferences": kept}), &what)
                .await?;
        }
        Ok(())
    }

    async fn patch_meta(
        &self,
        api: &Api<DynamicObject>,
        node: &Node,
        mut meta: serde_json::Value,
        what: &str,
    ) -> Result<(), ControllerError> {
        meta["resourceVersion"] = json!(node.resource_version);
        match api
            .patch(
                &node.name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": meta})),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Changed or gone meanwhile: its next event brings it back here.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(ControllerError::api("patch", what.to_owned(), e)),
        }
    }

    async fn release(&self, node: &Node, finalizer: &str) -> Result<(), ControllerError> {
        let what = format!("{} {}", node.resource.kind, node.name);
        let left: Vec<&String> = node.finalizers.iter().filter(|f| *f != finalizer).collect();
        tracing::info!(object = %what, finalizer, "dependents handled; releasing the owner");
        let api = self.api(&node.resource, node.namespace.as_deref());
        self.patch_meta(&api, node, json!({"finalizers": left}), &what)
            .await
    }

    async fn foreground(&self, uid: &str) -> Result<(), ControllerError> {
        let Some(node) = self.node(uid) else {
            return Ok(());
        };
        if !node.foreground() {
            return Ok(());
        }
        let dependents = self.dependents(uid);
        if dependents.is_empty() {
            return self.release(&node, FOREGROUND).await;
        }
        for d in dependents.iter().filter(|d| !d.deleting) {
            let what = format!("{} {}", d.resource.kind, d.name);
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Foreground),
                ..DeleteParams::default()
            };
            match self
                .api(&d.resource, d.namespace.as_deref())
                .delete(&d.name, &params)
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(ControllerError::api("delete", what, e)),
            }
        }
        Ok(())
    }

    async fn orphan(&self, uid: &str) -> Result<(), ControllerError> {
        let Some(node) = self.node(uid) else {
            return Ok(());
        };
        if !node.orphaning() {
            return Ok(());
        }
        let dependents = self.dependents(uid);
        for d in &dependents {
            let kept: Vec<&OwnerReference> = d.owners.iter().filter(|o| o.uid != uid).collect();
            let what = format!("{} {}", d.resource.kind, d.name);
            let api = self.api(&d.resource, d.namespace.as_deref());
            self.patch_meta(&api, d, json!({"ownerReferences": kept}), &what)
                .await?;
        }
        self.release(&node, ORPHAN).await
    }
}
