//! The ReplicaSet controller: keeps `spec.replicas` active pods made from the template,
//! adopting orphans that match the selector and releasing pods that stopped matching;
//! deletes the least useful pods first on a scale-down; creates in slow-start batches and
//! waits on expectations so a slow watch never makes it create twice; writes the status
//! Deployments, `kubectl get rs` and GitOps health read. The same controller drives
//! ReplicationControllers ([`replicated`]).

pub mod replicated;
pub mod status;

use std::sync::Arc;

use ferry_client::events::{Involved, Recorder};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::expectations::Expectations;
use super::informer::Informer;
use super::owner::{self, controller_ref, key_of};
use super::pods::{self, BURST};
use super::runner;
use crate::controllers::cached_pod::CachedPod;
pub use replicated::Replicated;

/// What every ReplicaSet reconcile shares.
struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    expectations: Expectations,
    backoff: Backoff,
    recorder: Recorder,
}

/// The controller of kind `K` (ReplicaSets or ReplicationControllers), subscribed to `pods`;
/// runs until `cancel`. The ReplicaSets come from their shared informer (the Deployment
/// controller reads the same cache); ReplicationControllers, which nothing else reads, from a
/// watch of its own.
pub fn controller<K: Replicated>(
    client: kube::Client,
    sets: Option<&Informer<K>>,
    pods: &Informer<CachedPod>,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = match sets {
        Some(informer) => runner::shared_controller(informer),
        None => runner::controller(Api::<K>::all(client.clone())),
    };
    let sets = controller.store();
    let triggers = pods.subscribe(move |pod| runner::owners_of(pod, &sets, K::selector));
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), K::COMPONENT, ""),
        client,
        pods: pods.store(),
        expectations: Expectations::default(),
        backoff: Backoff::default(),
    });
    runner::drive(controller, triggers, reconcile::<K>, ctx, cancel)
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

#[tracing::instrument(level = "debug", skip_all, fields(kind = %K::kind(&()), object = %key_of(set.as_ref())))]
async fn reconcile<K: Replicated>(
    set: Arc<K>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let key = key_of(set.as_ref());
    let ns = set.namespace().unwrap_or_default();
    let selector = runner::non_empty(set.as_ref(), set.selector()?)?;
    let rs = set.view()?;
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let candidates = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()));
    let cached_api: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = owner::claim_and_settle(&cached_api, set.as_ref(), &selector, candidates).await?;
    // Pods being deleted that have not finished: a ReplicaSet reports them (a Recreate
    // rollout waits for them to go); a ReplicationController's API has no such field.
    let terminating = (K::kind(&()) == "ReplicaSet").then(|| {
        owned
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some() && !pods::is_finished(p))
            .count() as i32
    });
    let active: Vec<Arc<CachedPod>> = owned.into_iter().filter(|p| pods::is_active(p)).collect();
    let failure = if rs.metadata.deletion_timestamp.is_none()
        && ctx.expectations.satisfied(&key, |name| {
            ctx.pods.get(&ObjectRef::new(name).within(&ns)).is_some()
        }) {
        let owner = Owner {
            reference: controller_ref(set.as_ref()),
            about: Involved::of(set.as_ref()),
        };
        manage(&rs, &owner, &key, &active, &pod_api, &ctx).await
    } else {
        None
    };
    let now = jiff::Timestamp::now();
    let refused = failure.as_ref().map(|(_, message)| message.clone());
    let status = status::compute(&rs, &active, terminating, failure, now);
    if rs.status.as_ref() != Some(&status) {
        let mut body = json!({"status": status});
        if status.conditions.is_none() {
            body["status"]["conditions"] = Value::Null;
        }
        Api::<K>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
            .map_err(|e| {
                ControllerError::api("patch status of", format!("{} {key}", K::kind(&())), e)
            })?;
    }
    if let Some(message) = refused {
        // Try again later, with back-off, not on the next event.
        return Err(ControllerError::Refused {
            what: format!("{} {key}", K::kind(&())),
            message,
        });
    }
    ctx.backoff.succeeded(&key);
    let min_ready = rs
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    Ok(pods::until_available(&active, min_ready, now))
}

/// Who owns the pods `manage` creates and deletes.
struct Owner {
    /// The controller reference the new pods carry.
    reference: OwnerReference,
    /// The object events are about.
    about: Involved,
}

/// Creates or deletes pods toward `spec.replicas`; answers the failure to report, if any.
async fn manage(
    rs: &ReplicaSet,
    owner: &Owner,
    key: &str,
    active: &[Arc<CachedPod>],
    pod_api: &Api<Pod>,
    ctx: &Context,
) -> Option<(&'static str, String)> {
    let spec = rs.spec.as_ref()?;
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    let about = &owner.about;
    if active.len() < want {
        let template = spec.template.as_ref()?;
        let pod = pods::from_template(template, owner.reference.clone(), &rs.name_any());
        let created = pods::create_in_batches(pod_api, &pod, want - active.len()).await;
        if !created.names.is_empty() {
            let message = created_message("Created", &created.names);
            ctx.recorder
                .record(about, "Normal", "SuccessfulCreate", &message)
                .await;
        }
        ctx.expectations.created(key, created.names);
        if let Some(e) = created.failure {
            let message = e.to_string();
            tracing::warn!(object = %key, error = %message, "pod creation refused");
            ctx.recorder
                .record(about, "Warning", "FailedCreate", &message)
                .await;
            return Some(("FailedCreate", message));
        }
    } else if active.len() > want {
        let mut victims = active.to_vec();
        pods::deletion_order(&mut victims);
        victims.truncate((active.len() - want).min(BURST));
        ctx.expectations
            .deleted(key, victims.iter().map(|p| p.name_any()));
        let (deleted, failure) = pods::delete_all(pod_api, &victims).await;
        // A deletion that failed will not be seen: it is not waited for (the next pass
        // picks its victims again).
        ctx.expectations.not_deleted(
            key,
            victims
                .iter()
                .map(|p| p.name_any())
                .filter(|n| !deleted.contains(n)),
        );
        if !deleted.is_empty() {
            let message = created_message("Deleted", &deleted);
            ctx.recorder
                .record(about, "Normal", "SuccessfulDelete", &message)
                .await;
        }
        if let Some(e) = failure {
            let message = e.to_string();
            ctx.recorder
                .record(about, "Warning", "FailedDelete", &message)
                .await;
            return Some(("FailedDelete", message));
        }
    }
    None
}

/// `Created pod: web-abcde`, or for many `Created 12 pods: web-a, web-b, web-c, ...`.
fn created_message(verb: &str, names: &[String]) -> String {
    match names {
        [one] => format!("{verb} pod: {one}"),
        many => {
            let shown: Vec<&str> = many.iter().take(3).map(String::as_str).collect();
            format!("{verb} {} pods: {}, ...", many.len(), shown.join(", "))
        }
    }
}
