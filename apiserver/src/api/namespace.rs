//! Namespace lifecycle, as Kubernetes' NamespaceLifecycle admission and namespace controller
//! do it together.
//!
//! Deleting a namespace deletes what it holds in the same transaction. Objects held by
//! finalizers (a `foregroundDeletion` owner, a custom finalizer) are only marked with a
//! `deletionTimestamp`; the namespace then stays, in phase `Terminating` with the
//! `NamespaceContentRemaining` / `NamespaceFinalizersRemaining` conditions, and refuses new
//! content (403). The [`finisher`] follows the change log and finishes a terminating namespace
//! once what held it is gone: it drops the `kubernetes` finalizer from `spec.finalizers` and
//! deletes the namespace when no finalizer is left. `PUT namespaces/NAME/finalize` sets
//! `spec.finalizers`, as Kubernetes' finalize subresource.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_schema::kinds::KINDS;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::ApiState;
use super::admission::{has_finalizers, now};
use super::allocator;
use super::catalog::storage_resource;
use crate::storage::{ObjectKey, StorageError, Stored, WriteOp};

/// Whether the object at `key` is a namespace: being deleted, it is only updated until the
/// finisher has removed its content and deletes it.
pub(crate) fn deleted_by_finisher(key: &ObjectKey) -> bool {
    key.namespace.is_empty() && key.resource == "namespaces"
}

/// The finalizer the namespace controller owns (in `spec.finalizers`).
pub const FINALIZER: &str = "kubernetes";

/// Where namespaces are stored.
const NAMESPACES: &str = "namespaces";

/// How long the finisher gathers changes before it re-plans the namespaces they touched.
const GATHER: Duration = Duration::from_millis(50);

/// The storage resources that live in namespaces: the built-in kinds and the served
/// CustomResourceDefinitions.
fn namespaced_resources(state: &ApiState) -> BTreeSet<String> {
    let mut resources: BTreeSet<String> = KINDS
        .iter()
        .filter(|k| k.namespaced)
        .map(storage_resource)
        .collect();
    resources.extend(
        state
            .admission
            .crds()
            .all()
            .into_iter()
            .filter(|c| c.info.namespaced)
            .map(|c| storage_resource(c.info)),
    );
    resources
}

fn is_terminating(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

/// The operations that delete the namespace `stored` (at `key`), or move it on towards its
/// deletion: its free content deleted, held content marked, and the namespace itself either
/// deleted (nothing holds it) or updated as Terminating. All in one transaction, each object
/// with its revision as precondition.
pub(crate) async fn deletion_ops(
    state: &ApiState,
    key: &ObjectKey,
    stored: &Stored,
) -> Result<Vec<WriteOp>, StorageError> {
    let mut ops = Vec::new();
    let stamp = now();
    let mut held: BTreeSet<String> = BTreeSet::new();
    let mut held_finalizers: BTreeSet<String> = BTreeSet::new();
    for resource in namespaced_resources(state) {
        let page = state
            .storage
            .list(&resource, Some(&key.name), None, 0)
            .await?;
        for item in page.items {
            let name = item.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let item_key = ObjectKey::new(&resource, &key.name, name);
            if has_finalizers(&item.object) {
                held.insert(resource.clone());
                held_finalizers.extend(
                    item.object["metadata"]["finalizers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(str::to_owned),
                );
                if !is_terminating(&item.object) {
                    let mut object = item.object.clone();
                    object["metadata"]["deletionTimestamp"] = json!(stamp);
                    object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                    ops.push(WriteOp::Update {
                        key: item_key,
                        object,
                        expected: Some(item.revision),
                    });
                }
                continue;
            }
            if resource == "services" {
                ops.extend(
                    allocator::reservations(&item.object)
                        .into_iter()
                        .map(|key| WriteOp::Delete {
                            key,
                            expected: None,
                        }),
                );
            }
            ops.push(WriteOp::Delete {
                key: item_key,
                expected: Some(item.revision),
            });
        }
    }
    let mut namespace = stored.object.clone();
    let mut spec_finalizers: Vec<Value> = namespace["spec"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if held.is_empty() {
        // Nothing remains: the namespace controller's own finalizer is done.
        spec_finalizers.retain(|f| f != FINALIZER);
    }
    if held.is_empty() && spec_finalizers.is_empty() && !has_finalizers(&namespace) {
        ops.push(WriteOp::Delete {
            key: key.clone(),
            expected: Some(stored.revision),
        });
        return Ok(ops);
    }
    if !is_terminating(&namespace) {
        namespace["metadata"]["deletionTimestamp"] = json!(stamp);
        namespace["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    }
    if namespace["spec"].is_object() {
        namespace["spec"]["finalizers"] = json!(spec_finalizers);
    }
    let mut fresh = conditions(&held, &held_finalizers, &stamp);
    keep_transition_times(&stored.object["status"]["conditions"], &mut fresh);
    namespace["status"] = json!({"phase": "Terminating", "conditions": fresh});
    if namespace != stored.object {
        ops.push(WriteOp::Update {
            key: key.clone(),
            object: namespace,
            expected: Some(stored.revision),
        });
    }
    Ok(ops)
}

/// The conditions a terminating namespace shows, as the namespace controller words them.
fn conditions(held: &BTreeSet<String>, finalizers: &BTreeSet<String>, stamp: &str) -> Value {
    let condition = |kind: &str, on: bool, reason: &str, message: String| {
        json!({
            "type": kind,
            "status": if on { "True" } else { "False" },
            "lastTransitionTime": stamp,
            "reason": reason,
            "message": message,
        })
    };
    let plural = |r: &String| r.rsplit('/').next().unwrap_or(r).to_owned();
    json!([
        condition(
            "NamespaceContentRemaining",
            !held.is_empty(),
            if held.is_empty() {
                "ContentDeleted"
            } else {
                "SomeResourcesRemain"
            },
            if held.is_empty() {
                "All content successfully removed".to_owned()
            } else {
                format!(
                    "Some resources are remaining: {}",
                    held.iter().map(plural).collect::<Vec<_>>().join(", ")
                )
            },
        ),
        condition(
            "NamespaceFinalizersRemaining",
            !finalizers.is_empty(),
            if finalizers.is_empty() {
                "ContentHasNoFinalizers"
            } else {
                "SomeFinalizersRemain"
            },
            if finalizers.is_empty() {
                "All content-preserving finalizers finished".to_owned()
            } else {
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    finalizers.iter().cloned().collect::<Vec<_>>().join(", ")
                )
            },
        ),
    ])
}

/// A condition whose status did not change keeps the time it last changed (so that a pass
/// that finds nothing new writes nothing).
fn keep_transition_times(old: &Value, fresh: &mut Value) {
    for condition in fresh.as_array_mut().into_iter().flatten() {
        let before = old
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == condition["type"] && c["status"] == condition["status"]);
        if let Some(before) = before {
            condition["lastTransitionTime"] = before["lastTransitionTime"].clone();
        }
    }
}

/// One pass over the namespace `name`, if it is terminating: what can go, goes. `Ok(true)`
/// when the namespace is gone or not terminating (nothing more to follow).
async fn finish(state: &ApiState, name: &str) -> Result<bool, StorageError> {
    let key = ObjectKey::new(NAMESPACES, "", name);
    let Some(stored) = state.storage.get(&key).await? else {
        return Ok(true);
    };
    if !is_terminating(&stored.object) {
        return Ok(true);
    }
    let ops = deletion_ops(state, &key, &stored).await?;
    let deletes_namespace = ops
        .iter()
        .any(|op| matches!(op, WriteOp::Delete { key: k, .. } if *k == key));
    if !ops.is_empty() {
        state.storage.write(ops).await?;
    }
    Ok(deletes_namespace)
}

/// Follows the change log and finishes terminating namespaces as their content goes, until
/// `cancel` fires. Errors (a conflict with a concurrent writer, an unavailable database) are
/// logged and retried with back-off; a restarted finisher first sweeps every namespace.
pub async fn finisher(state: Arc<ApiState>, cancel: CancellationToken) {
    let mut delay = Duration::from_millis(100);
    loop {
        match follow(&state, &cancel).await {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?delay, "the namespace finisher failed; restarting");
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One run of the finisher: a sweep, then the change log. Returns on cancellation; an error
/// restarts it.
async fn follow(state: &ApiState, cancel: &CancellationToken) -> Result<(), StorageError> {
    let revision = state.storage.revision().await?;
    let mut watch = state.storage.watch(revision);
    let mut terminating: HashSet<String> = state
        .storage
        .list(NAMESPACES, None, None, 0)
        .await?
        .items
        .into_iter()
        .filter(|s| is_terminating(&s.object))
        .filter_map(|s| s.object["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let mut dirty: BTreeSet<String> = terminating.iter().cloned().collect();
    loop {
        for name in std::mem::take(&mut dirty) {
            let span = tracing::info_span!("namespace_finish", namespace = %name);
            let _entered = span.enter();
            match finish(state, &name).await {
                Ok(true) => {
                    terminating.remove(&name);
                }
                Ok(false) => {}
                // Someone wrote meanwhile: their change is on its way through the log.
                Err(StorageError::Conflict { .. } | StorageError::NotFound(_)) => {
                    dirty.insert(name);
                }
                Err(error) => return Err(error),
            }
        }
        // Wait for a change, then gather what follows it for a moment.
        let wait = if dirty.is_empty() { None } else { Some(GATHER) };
        let first = tokio::select! {
            () = cancel.cancelled() => return Ok(()),
            change = watch.next() => Some(change?),
            () = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            } => None,
        };
        let Some(first) = first else { continue };
        let mut changes = vec![first];
        let deadline = tokio::time::Instant::now() + GATHER;
        while let Ok(change) = tokio::time::timeout_at(deadline, watch.next()).await {
            changes.push(change?);
        }
        for change in changes {
            if change.key.resource == NAMESPACES {
                if change.event != crate::storage::EventType::Deleted
                    && is_terminating(&change.object()?)
                {
                    terminating.insert(change.key.name.clone());
                    dirty.insert(change.key.name.clone());
                } else {
                    terminating.remove(&change.key.name);
                }
            } else if terminating.contains(&change.key.namespace) {
                dirty.insert(change.key.namespace.clone());
            }
        }
    }
}

/// `PUT namespaces/NAME/finalize`: the body's `spec.finalizers` replaces the namespace's; a
/// terminating namespace left without finalizers and content is deleted.
pub(crate) fn finalized(stored: &Value, body: &Value) -> Value {
    let mut object = stored.clone();
    object["spec"]["finalizers"] = body["spec"]["finalizers"].clone();
    if object["spec"]["finalizers"].is_null() {
        object["spec"]["finalizers"] = json!([]);
    }
    object
}
