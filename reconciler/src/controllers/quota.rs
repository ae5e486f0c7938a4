//! The resource quota controller: a ResourceQuota's `status.hard` and `status.used` (what
//! `kubectl describe quota` shows), recounted from the namespace's objects of every resource
//! its `spec.hard` limits. Pod changes trigger a recount at once (the shared pod cache); a
//! quota that also counts other objects (`count/configmaps`, `count/deployments.apps`,
//! `services`, `requests.storage`, ...) is recounted every [`RECOUNT`] as well, which is how
//! units come back after such objects are deleted. The apiserver's admission charges creates
//! against `status.used`; writes here carry the quota's resourceVersion, so a recount never
//! overwrites a charge it did not see.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ferry_schema::kinds::KINDS;
use ferry_schema::quota::{self, Usage};
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::Action;
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
    let controller = runner::controller(Api::<ResourceQuota>::all(client.clone()));
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

/// How often a quota that counts objects other than pods is recounted.
pub const RECOUNT: Duration = Duration::from_secs(5);

/// The API resource of `group`/`resource`: a built-in kind from the catalogue, otherwise (a
/// custom resource) from the group's discovery.
async fn api_resource(
    client: &kube::Client,
    group: &str,
    resource: &str,
) -> Result<Option<ApiResource>, kube::Error> {
    if let Some(kind) = KINDS
        .iter()
        .find(|k| k.group == group && k.plural == resource)
    {
        return Ok(Some(crate::kinds::api_resource(kind)));
    }
    if group.is_empty() {
        return Ok(None);
    }
    let found = match kube::discovery::group(client, group).await {
        Ok(found) => found,
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(found
        .recommended_resources()
        .into_iter()
        .map(|(ar, _)| ar)
        .find(|ar| ar.plural == resource))
}

/// What the objects of `ns` use of everything `hard` limits: one list per counted resource.
async fn count(
    client: &kube::Client,
    ns: &str,
    spec: &Value,
    key: &str,
) -> Result<Usage, ControllerError> {
    let sources: BTreeSet<(&str, &str)> = spec["hard"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| quota::source(k))
        .collect();
    let mut used = Usage::new();
    for (group, resource) in sources {
        let what = || format!("{resource} counted by ResourceQuota {key}");
        let Some(ar) = api_resource(client, group, resource)
            .await
            .map_err(|e| ControllerError::api("discover", what(), e))?
        else {
            // Nothing of that resource can exist: it counts zero.
            continue;
        };
        let objects = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &ar)
            .list(&ListParams::default())
            .await
            .map_err(|e| ControllerError::api("list", what(), e))?;
        let values: Vec<Value> = objects
            .items
            .iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect();
        let scoped = values.iter().filter(|o| quota::in_scope(spec, resource, o));
        for (k, v) in quota::total(group, resource, scoped) {
            *used.entry(k).or_default() += v;
        }
    }
    Ok(used)
}

#[tracing::instrument(level = "debug", skip_all, fields(quota = %key_of(q.as_ref())))]
async fn reconcile(q: Arc<ResourceQuota>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(q.as_ref());
    let ns = q.namespace().unwrap_or_default();
    let spec = serde_json::to_value(&q.spec).unwrap_or(Value::Null);
    let hard = spec["hard"].clone();
    let used = quota::used_status(&hard, &count(&ctx.client, &ns, &spec, &key).await?);
    let mut status = json!({"used": used});
    if !hard.is_null() {
        status["hard"] = hard.clone();
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
    let counts_more_than_pods = hard
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, _)| quota::source(k).is_some_and(|(_, resource)| resource != "pods"));
    Ok(if counts_more_than_pods {
        Action::requeue(RECOUNT)
    } else {
        Action::await_change()
    })
}
