//! What every workload controller's loop shares: mapping a changed child to the owners to
//! reconcile, the error policy (per-object back-off), and driving a kube-runtime
//! `Controller` until shutdown.

use std::fmt::Debug;
use std::sync::Arc;

use ferry_schema::selector::LabelSelector;
use futures::{Stream, StreamExt};
use kube::Resource;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::informer::Informer;
use super::owner::{controller_of, key_of};
use crate::controllers::cached_pod::CachedPod;

/// A controller's shared context, as far as the runner needs it.
pub(crate) trait Shared: Send + Sync + 'static {
    /// The per-object failure counts.
    fn backoff(&self) -> &Backoff;
}

/// A kube-runtime `Controller` of every `K` (as `Controller::new` makes one), whose cache drops
/// each object's managedFields: no controller reads them, and for a Deployment or ReplicaSet
/// that a GitOps apply and a controller both wrote they are the larger part of the object (the
/// field sets of the whole pod template). A write from the cached copy keeps the stored
/// entries, which the apiserver takes from the object it holds.
pub(crate) fn controller<K>(api: Api<K>) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let objects = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(without_managed_fields)
        .reflect(writer)
        .applied_objects();
    Controller::for_stream(objects, store)
}

/// A kube-runtime `Controller` of every `K` that reads the shared `informer`'s cache and is
/// woken by its changes, instead of watching and caching every `K` a second time (a kind that
/// other controllers also read: ReplicaSets for Deployments, Jobs for CronJobs). Its runner
/// waits, as `Controller::new`'s does, until the informer's first list is in.
pub(crate) fn shared_controller<K>(informer: &Informer<K>) -> Controller<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let changes = informer.subscribe(|object: &K| vec![ObjectRef::from_obj(object)]);
    Controller::for_stream(futures::stream::pending(), informer.store()).reconcile_on(changes)
}

/// Drops an object's managedFields before a cache keeps it.
pub(crate) fn without_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// The owners of kind `K` a changed child concerns: its controller if that is a `K`, or, for
/// an orphan, every `K` of its namespace whose (non-empty) selector matches it, to adopt it.
pub(crate) fn owners_of<K, C>(
    child: &C,
    owners: &Store<K>,
    selector: fn(&K) -> Result<LabelSelector, ControllerError>,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    C: Resource,
{
    let ns = child.namespace().unwrap_or_default();
    match controller_of(child.meta()) {
        Some(r) if r.kind == K::kind(&()) => vec![ObjectRef::new(&r.name).within(&ns)],
        Some(_) => Vec::new(),
        None => owners
            .state()
            .iter()
            .filter(|o| o.namespace().as_deref() == Some(ns.as_str()))
            .filter(|o| {
                selector(o).is_ok_and(|s| !s.is_empty() && s.matches_labels(child.labels()))
            })
            .map(|o| ObjectRef::from_obj(o.as_ref()))
            .collect(),
    }
}

/// The objects of `store` in `pod`'s namespace for which `selects(object, pod)` holds (a
/// budget, a quota or a Service a changed pod concerns).
pub(crate) fn in_namespace_of<K>(
    pod: &CachedPod,
    store: &Store<K>,
    selects: impl Fn(&K, &CachedPod) -> bool,
) -> Vec<ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let ns = pod.namespace().unwrap_or_default();
    store
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(ns.as_str()))
        .filter(|o| selects(o, pod))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// An owner's selector, parsed (an absent one selects nothing and reads as empty).
pub(crate) fn parse_selector<K: Resource<DynamicType = ()>>(
    owner: &K,
    selector: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector>,
) -> Result<LabelSelector, ControllerError> {
    let selector = selector.cloned().unwrap_or_default();
    LabelSelector::from_typed(&selector).map_err(|source| ControllerError::Selector {
        what: format!("{} {}", K::kind(&()), key_of(owner)),
        source,
    })
}

/// `selector` if it selects something: an empty one would select every pod of the
/// namespace, which no workload controller manages.
pub(crate) fn non_empty<K: Resource<DynamicType = ()>>(
    owner: &K,
    selector: LabelSelector,
) -> Result<LabelSelector, ControllerError> {
    if selector.is_empty() {
        return Err(ControllerError::Invalid {
            what: format!("{} {}", K::kind(&()), key_of(owner)),
            message: "an empty selector would select every pod; refusing to manage".into(),
        });
    }
    Ok(selector)
}

/// Requeues a failed object after its back-off.
fn error_policy<K, C>(object: Arc<K>, error: &ControllerError, ctx: Arc<C>) -> Action
where
    K: Resource<DynamicType = ()>,
    C: Shared,
{
    let key = key_of(object.as_ref());
    let delay = ctx.backoff().failed(&key);
    if error.is_conflict() || error.is_not_found() {
        // A write guarded by a resourceVersion the cache had not caught up with, or to an
        // object deleted meanwhile: expected, and looked at again with the newer state.
        tracing::debug!(kind = %K::kind(&()), object = %key, %error, retry_in = ?delay, "reconcile raced a change");
    } else {
        tracing::warn!(kind = %K::kind(&()), object = %key, %error, retry_in = ?delay, "reconcile failed");
    }
    Action::requeue(delay)
}

/// Runs `controller` with `reconcile`, also woken by `triggers`, until `cancel`.
pub(crate) async fn drive<K, C, Fut>(
    controller: Controller<K>,
    triggers: impl Stream<Item = ObjectRef<K>> + Send + 'static,
    reconcile: fn(Arc<K>, Arc<C>) -> Fut,
    ctx: Arc<C>,
    cancel: CancellationToken,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    C: Shared,
    Fut: Future<Output = Result<Action, ControllerError>> + Send + 'static,
{
    controller
        .reconcile_on(triggers)
        .graceful_shutdown_on(cancel.cancelled_owned())
        .run(reconcile, error_policy::<K, C>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(kind = %K::kind(&()), error = %e, "reconcile ended in error");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, ObjectMeta};

    #[test]
    fn a_cached_object_keeps_all_but_its_managed_fields() {
        let mut d = Deployment {
            metadata: ObjectMeta {
                name: Some("web".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                managed_fields: Some(vec![ManagedFieldsEntry {
                    manager: Some("ferry-gitops".into()),
                    ..ManagedFieldsEntry::default()
                }]),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        };
        super::without_managed_fields(&mut d);
        assert_eq!(d.metadata.managed_fields, None);
        assert_eq!(d.metadata.name.as_deref(), Some("web"));
        assert_eq!(d.metadata.labels.map(|l| l.len()), Some(1));
    }
}
