//! The StatefulSet controller: stable pod identities `<set>-<ordinal>` (hostname, the
//! governing Service as subdomain, `statefulset.kubernetes.io/pod-name` and
//! `apps.kubernetes.io/pod-index` labels), a PersistentVolumeClaim per volumeClaimTemplate
//! and ordinal (`<claim>-<set>-<ordinal>`, kept on scale-down and deletion unless the
//! retention policy says Delete), OrderedReady and Parallel management, RollingUpdate with
//! `partition` and `maxUnavailable`, OnDelete ([`plan`]); the template history as
//! ControllerRevisions, and `currentRevision`/`updateRevision` as `kubectl rollout` reads them.

pub mod plan;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ferry_client::events::{Involved, Recorder};
use ferry_schema::intstr::scaled;
use ferry_schema::selector::LabelSelector;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::history::{self, HASH_LABEL};
use super::informer::Informer;
use super::owner::{self, controller_ref, key_of};
use super::pods;
use super::runner;
use crate::controllers::cached_pod::CachedPod;
use plan::{Inputs, Step};

/// The label with a pod's name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with a pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// What every StatefulSet reconcile shares.
struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    revisions: Store<ControllerRevision>,
    backoff: Backoff,
    recorder: Recorder,
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

fn selector_of(set: &StatefulSet) -> Result<LabelSelector, ControllerError> {
    runner::parse_selector(set, set.spec.as_ref().map(|s| &s.selector))
}

/// The StatefulSet controller, subscribed to `pods`; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    pods: &Informer<CachedPod>,
    revisions: &Informer<ControllerRevision>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = runner::controller(Api::<StatefulSet>::all(client.clone()));
    let sets = controller.store();
    let triggers = pods.subscribe(move |pod| runner::owners_of(pod, &sets, selector_of));
    let ctx = Arc::new(Context {
        client,
        pods: pods.store(),
        revisions: revisions.store(),
        backoff: Backoff::default(),
        recorder,
    });
    runner::drive(controller, triggers, reconcile, ctx, cancel)
}

/// The ordinal of a pod named `<set>-<ordinal>`.
fn ordinal_of(set: &str, pod: &CachedPod) -> Option<i32> {
    pod.name_any()
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

#[tracing::instrument(level = "debug", skip_all, fields(statefulset = %key_of(set.as_ref())))]
async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(set.as_ref());
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let invalid = |message: String| ControllerError::Invalid {
        what: format!("StatefulSet {key}"),
        message,
    };
    let spec = set.spec.as_ref().ok_or_else(|| invalid("no spec".into()))?;
    let selector = runner::non_empty(set.as_ref(), selector_of(&set)?)?;
    if ctx.revisions.wait_until_ready().await.is_err() {
        return Ok(Action::await_change());
    }
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let candidates = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()));
    let cached_api: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &ns);
    let owned = owner::claim_and_settle(&cached_api, set.as_ref(), &selector, candidates).await?;
    let pods: BTreeMap<i32, Arc<CachedPod>> = owned
        .iter()
        .filter_map(|p| Some((ordinal_of(&name, p)?, p.clone())))
        .collect();

    // Revisions: the update one is the template's; the current one what the status says.
    let revisions = history::owned_by(set.as_ref(), ctx.revisions.state());
    let used: HashSet<String> = owned
        .iter()
        .filter_map(|p| p.labels().get(HASH_LABEL).cloned())
        .collect();
    let limit = spec.revision_history_limit.unwrap_or(10);
    let update = history::sync(
        &ctx.client,
        set.as_ref(),
        &spec.template,
        &revisions,
        limit,
        &used,
    )
    .await?;
    let old_status = set.status.clone().unwrap_or_default();
    let current = old_status
        .current_revision
        .clone()
        .filter(|c| revisions.iter().any(|r| r.name_any() == *c))
        .unwrap_or_else(|| update.name.clone());
    let current_template = revisions
        .iter()
        .find(|r| r.name_any() == current)
        .and_then(|r| history::template_of(r))
        .unwrap_or_else(|| spec.template.clone());

    let replicas = spec.replicas.unwrap_or(1);
    let strategy = spec.update_strategy.clone().unwrap_or_default();
    let (partition, max_unavailable) = if strategy.type_.as_deref() == Some("OnDelete") {
        (None, 1)
    } else {
        let rolling = strategy.rolling_update.unwrap_or_default();
        let max = rolling.max_unavailable.unwrap_or(IntOrString::Int(1));
        let max = scaled(&max, replicas, true).map_err(|e| invalid(e.to_string()))?;
        (Some(rolling.partition.unwrap_or(0)), max)
    };
    let inputs = Inputs {
        start: spec.ordinals.as_ref().and_then(|o| o.start).unwrap_or(0),
        replicas,
        parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
        partition,
        max_unavailable,
        current: current.clone(),
        update: update.name.clone(),
    };
    let about = Involved::of(set.as_ref());
    if set.metadata.deletion_timestamp.is_none() {
        for step in plan::plan(&pods, &inputs) {
            match step {
                Step::Create(ordinal, revision) => {
                    let template = if revision == update.name {
                        &spec.template
                    } else {
                        &current_template
                    };
                    create(&ctx, &set, template, &revision, ordinal, &about).await?;
                }
                Step::Delete(pod) => {
                    let (deleted, failure) =
                        pods::delete_all(&pod_api, std::slice::from_ref(&pod)).await;
                    if let Some(e) = failure {
                        return Err(e);
                    }
                    for gone in deleted {
                        let message = format!("delete Pod {gone} in StatefulSet {name} successful");
                        ctx.recorder
                            .record(&about, "Normal", "SuccessfulDelete", &message)
                            .await;
                    }
                    let condemned = ordinal_of(&name, &pod)
                        .is_some_and(|o| o < inputs.start || o >= inputs.start + replicas);
                    if condemned && retention(&set, "whenScaled") == "Delete" {
                        delete_claims(&ctx, &set, ordinal_of(&name, &pod).unwrap_or_default())
                            .await?;
                    }
                }
            }
        }
    }

    // Status.
    let now = jiff::Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let live: Vec<&Arc<CachedPod>> = pods
        .values()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    let count = |f: &dyn Fn(&CachedPod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
    let mut status = StatefulSetStatus {
        replicas: live.len() as i32,
        ready_replicas: Some(count(&|p| pods::is_ready(p))),
        available_replicas: Some(count(&|p| pods::is_available(p, min_ready, now))),
        current_replicas: Some(count(&|p| p.labels().get(HASH_LABEL) == Some(&current))),
        updated_replicas: Some(count(&|p| p.labels().get(HASH_LABEL) == Some(&update.name))),
        current_revision: Some(current.clone()),
        update_revision: Some(update.name.clone()),
        observed_generation: set.metadata.generation,
        collision_count: old_status.collision_count,
        conditions: old_status.conditions.clone(),
    };
    // Every pod updated and ready: the update revision becomes the current one.
    if partition.is_some()
        && status.updated_replicas == Some(replicas)
        && status.ready_replicas == Some(replicas)
        && status.replicas == replicas
    {
        status.current_revision = status.update_revision.clone();
        status.current_replicas = status.updated_replicas;
    }
    if set.status.as_ref() != Some(&status) {
        Api::<StatefulSet>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .map_err(|e| {
                ControllerError::api("patch status of", format!("StatefulSet {key}"), e)
            })?;
    }
    ctx.backoff.succeeded(&key);
    Ok(pods::until_available(live.iter().copied(), min_ready, now))
}

/// `whenScaled` or `whenDeleted` of the claim retention policy (Retain unless it says
/// Delete).
fn retention(set: &StatefulSet, which: &str) -> String {
    let policy = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let value = match which {
        "whenScaled" => policy.and_then(|p| p.when_scaled.clone()),
        _ => policy.and_then(|p| p.when_deleted.clone()),
    };
    value.unwrap_or_else(|| "Retain".into())
}

fn claim_name(claim: &str, set: &str, ordinal: i32) -> String {
    format!("{claim}-{set}-{ordinal}")
}

/// Creates the claims of `ordinal` that are missing, then its pod from `template`.
async fn create(
    ctx: &Context,
    set: &StatefulSet,
    template: &PodTemplateSpec,
    revision: &str,
    ordinal: i32,
    about: &Involved,
) -> Result<(), ControllerError> {
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let spec = set.spec.clone().unwrap_or_default();
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let mut volumes: Vec<Volume> = Vec::new();
    for template in spec.volume_claim_templates.iter().flatten() {
        let claim = template.metadata.name.clone().unwrap_or_default();
        let claim_name = claim_name(&claim, &name, ordinal);
        let mut labels = template.metadata.labels.clone().unwrap_or_default();
        labels.extend(spec.selector.match_labels.clone().unwrap_or_default());
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(claim_name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: template.metadata.annotations.clone(),
                // Deleted with the set only when the policy says so.
                owner_references: (retention(set, "whenDeleted") == "Delete")
                    .then(|| vec![controller_ref(set)]),
                ..ObjectMeta::default()
            },
            spec: template.spec.clone(),
            status: None,
        };
        match claims_api.create(&PostParams::default(), &pvc).await {
            Ok(_) => {
                let message = format!(
                    "create Claim {claim_name} Pod {name}-{ordinal} in StatefulSet {name} success"
                );
                ctx.recorder
                    .record(about, "Normal", "SuccessfulCreate", &message)
                    .await;
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                let message = format!(
                    "create Claim {claim_name} for Pod {name}-{ordinal} in StatefulSet {name} failed error: {e}"
                );
                ctx.recorder
                    .record(about, "Warning", "FailedCreate", &message)
                    .await;
                return Err(ControllerError::api(
                    "create",
                    format!("PersistentVolumeClaim {ns}/{claim_name}"),
                    e,
                ));
            }
        }
        volumes.push(Volume {
            name: claim,
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name,
                read_only: None,
            }),
            ..Volume::default()
        });
    }
    let pod_name = format!("{name}-{ordinal}");
    let mut pod = pods::from_template(template, controller_ref(set), &name);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name.clone());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(HASH_LABEL.into(), revision.into());
    labels.insert(POD_NAME_LABEL.into(), pod_name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ordinal.to_string());
    let pod_spec = pod.spec.get_or_insert_default();
    pod_spec.hostname = Some(pod_name.clone());
    if !spec.service_name.clone().unwrap_or_default().is_empty() {
        pod_spec.subdomain = spec.service_name.clone();
    }
    let existing = pod_spec.volumes.get_or_insert_default();
    existing.retain(|v| !volumes.iter().any(|c| c.name == v.name));
    existing.extend(volumes);
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &pod).await {
        Ok(_) => {
            let message = format!("create Pod {pod_name} in StatefulSet {name} successful");
            ctx.recorder
                .record(about, "Normal", "SuccessfulCreate", &message)
                .await;
            Ok(())
        }
        // Made by an earlier pass whose watch event has not arrived yet.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => {
            let message = format!("create Pod {pod_name} in StatefulSet {name} failed error: {e}");
            ctx.recorder
                .record(about, "Warning", "FailedCreate", &message)
                .await;
            Err(ControllerError::api(
                "create",
                format!("Pod {ns}/{pod_name}"),
                e,
            ))
        }
    }
}

/// Deletes the claims of a condemned ordinal (retention `whenScaled: Delete`).
async fn delete_claims(
    ctx: &Context,
    set: &StatefulSet,
    ordinal: i32,
) -> Result<(), ControllerError> {
    let ns = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for template in set
        .spec
        .iter()
        .flat_map(|s| s.volume_claim_templates.iter().flatten())
    {
        let claim = claim_name(
            template.metadata.name.as_deref().unwrap_or_default(),
            &set.name_any(),
            ordinal,
        );
        match api.delete(&claim, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(ControllerError::api(
                    "delete",
                    format!("PersistentVolumeClaim {ns}/{claim}"),
                    e,
                ));
            }
        }
    }
    Ok(())
}
