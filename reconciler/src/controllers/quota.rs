//! The resource quota controller: a ResourceQuota's `status.hard` and `status.used` (what
//! `kubectl describe quota` shows), recounted from the namespace's pods whenever one comes,
//! changes or goes. The apiserver's admission charges new pods against `status.used`; this
//! loop gives units back when pods finish or go. Writes carry the quota's resourceVersion, so
//! a recount never overwrites a charge it did not see.

use std::sync::Arc;

use ferry_schema::quota;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::informer::Informer;
use super::owner::key_of;
use super::runner;
use crate::controllers::cached_pod::CachedPod;

struct Context {
    client: kube::Client,
    backoff: Backoff,
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

/// The quota controller, told of pod changes by `pods`; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    pods: &Informer<CachedPod>,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = Controller::new(
        Api::<ResourceQuota>::all(client.clone()),
        watcher::Config::default(),
    );
    let quotas = controller.store();
    // Every quota of a changed pod's namespace counts it.
    let triggers =
        pods.subscribe(move |pod: &CachedPod| runner::in_namespace_of(pod, &quotas, |_, _| true));
    let ctx = Arc::new(Context {
        client,
        backoff: Backoff::default(),
    });
    runner::drive(controller, triggers, reconcile, ctx, cancel)
}

#[tracing::instrument(level = "debug", skip_all, fields(quota = %key_of(q.as_ref())))]
async fn reconcile(q: Arc<ResourceQuota>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(q.as_ref());
    let ns = q.namespace().unwrap_or_default();
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ns)
        .list(&ListParams::default())
        .await
        .map_err(|e| ControllerError::api("list pods for", format!("ResourceQuota {key}"), e))?;
    let pods: Vec<Value> = pods
        .items
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    let hard =
        serde_json::to_value(q.spec.as_ref().and_then(|s| s.hard.clone())).unwrap_or(Value::Null);
    let used = quota::used_status(&hard, &quota::total(pods.iter()));
    let mut status = json!({"used": used});
    if !hard.is_null() {
        status["hard"] = hard;
    }
    let current = serde_json::to_value(&q.status).unwrap_or(Value::Null);
    if current != status {
        let body = json!({"metadata": {"resourceVersion": q.resource_version()}, "status": status});
        Api::<ResourceQuota>::namespaced(ctx.client.clone(), &ns)
            .patch_status(&q.name_any(), &PatchParams::default(), &Patch::Merge(&body))
            .await
            .map_err(|e| {
                ControllerError::api("patch status of", format!("ResourceQuota {key}"), e)
            })?;
    }
    ctx.backoff.succeeded(&key);
    Ok(Action::await_change())
}
