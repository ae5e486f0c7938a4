//! The Deployment controller: one ReplicaSet per pod template (named by its
//! `pod-template-hash`), rolled from the old sets to the new by RollingUpdate (maxSurge,
//! maxUnavailable) or Recreate; revisions in annotations so that `kubectl rollout
//! history|undo` work; pause and resume; proportional scaling mid-rollout; the progress
//! deadline; old sets pruned to `revisionHistoryLimit`; the status `kubectl rollout status`
//! and GitOps health read.

pub mod revision;
pub mod rollout;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use ferry_client::events::{Involved, Recorder};
use ferry_schema::intstr;
use ferry_schema::selector::LabelSelector;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use self::revision::{DESIRED_REPLICAS, MAX_REPLICAS, REVISION};
use self::rollout::{Bounds, Set};
use self::status::Step;
use super::error::{Backoff, ControllerError};
use super::informer::Informer;
use super::owner::{self, controller_of, controller_ref, key_of};
use super::runner;

struct Context {
    client: kube::Client,
    sets: Store<ReplicaSet>,
    backoff: Backoff,
    recorder: Recorder,
}

fn selector_of(d: &Deployment) -> Result<LabelSelector, ControllerError> {
    runner::parse_selector(d, d.spec.as_ref().map(|s| &s.selector))
}

/// The Deployment controller, subscribed to `sets`; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    sets: &Informer<ReplicaSet>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = runner::controller(Api::<Deployment>::all(client.clone()));
    let deployments = controller.store();
    let triggers = sets.subscribe(move |rs| runner::owners_of(rs, &deployments, selector_of));
    let ctx = Arc::new(Context {
        client,
        sets: sets.store(),
        backoff: Backoff::default(),
        recorder,
    });
    runner::drive(controller, triggers, reconcile, ctx, cancel)
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

/// The rollout's bounds: maxSurge and maxUnavailable resolved against replicas (both 0 for
/// Recreate).
fn bounds(d: &Deployment, replicas: i32) -> Result<Bounds, ControllerError> {
    let strategy = d.spec.as_ref().and_then(|s| s.strategy.as_ref());
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Ok(Bounds {
            surge: 0,
            unavailable: 0,
        });
    }
    let rolling = strategy
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let quarter = k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("25%".into());
    let invalid = |e: intstr::IntOrPercentError| ControllerError::Invalid {
        what: format!("Deployment {}", key_of(d)),
        message: e.to_string(),
    };
    let surge = intstr::scaled(
        rolling.max_surge.as_ref().unwrap_or(&quarter),
        replicas,
        true,
    )
    .map_err(invalid)?;
    let unavailable = intstr::scaled(
        rolling.max_unavailable.as_ref().unwrap_or(&quarter),
        replicas,
        false,
    )
    .map_err(invalid)?;
    Ok(Bounds::new(surge, unavailable, replicas))
}

fn as_set(rs: &ReplicaSet) -> Set {
    let status = rs.status.as_ref();
    Set {
        name: rs.name_any(),
        replicas: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        current: status.map_or(0, |s| s.replicas),
        available: status.and_then(|s| s.available_replicas).unwrap_or(0),
        terminating: status.and_then(|s| s.terminating_replicas).unwrap_or(0),
        created: rs
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
    }
}

/// A set whose replicas disagree with the Deployment's last scaling: the Deployment was resized.
fn is_scaling_event(replicas: i32, sets: &[Arc<ReplicaSet>]) -> bool {
    sets.iter()
        .filter(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0)
        .filter_map(|rs| rs.annotations().get(DESIRED_REPLICAS))
        .any(|desired| desired.parse::<i32>().ok() != Some(replicas))
}

#[tracing::instrument(level = "debug", skip_all, fields(deployment = %key_of(d.as_ref())))]
async fn reconcile(d: Arc<Deployment>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(d.as_ref());
    let ns = d.namespace().unwrap_or_default();
    let selector = selector_of(&d)?;
    let about = Involved::of(d.as_ref());
    if selector.is_empty() {
        ctx.recorder
            .record(
                &about,
                "Warning",
                "SelectingAll",
                "This deployment is selecting all pods. A non-empty selector is required.",
            )
            .await;
        return Err(ControllerError::Invalid {
            what: format!("Deployment {key}"),
            message: "an empty selector would select every pod".into(),
        });
    }
    let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
    let candidates = ctx
        .sets
        .state()
        .into_iter()
        .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()));
    let claim = owner::claim(d.as_ref(), &selector, candidates);
    let mut owned = claim.owned;
    let reference = controller_ref(d.as_ref());
    for rs in claim.adopt {
        if owner::adopt(&api, &rs, &reference).await? {
            owned.push(rs);
        }
    }
    for rs in &claim.release {
        owner::release(&api, rs, &reference.uid).await?;
    }
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let bounds = bounds(&d, replicas)?;
    owned.sort_by_key(|rs| {
        rs.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
    });
    let new_index = owned.iter().position(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| revision::same_template(t, &spec.template))
    });
    let mut new: Option<ReplicaSet> = new_index.map(|i| owned[i].as_ref().clone());
    let old: Vec<Arc<ReplicaSet>> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_index)
        .map(|(_, rs)| rs.clone())
        .collect();
    let mut step = Step::Synced;
    let scaler = Scaler {
        api: &api,
        d: &d,
        ctx: &ctx,
        max: replicas + bounds.surge,
    };

    if d.metadata.deletion_timestamp.is_none() {
        let max_old = old
            .iter()
            .map(|rs| revision::revision_of(&rs.metadata))
            .max()
            .unwrap_or(0);
        let paused = spec.paused == Some(true);
        if paused || is_scaling_event(replicas, &owned) {
            let old_sets: Vec<Set> = old.iter().map(|rs| as_set(rs)).collect();
            let changes = rollout::proportional(
                replicas,
                bounds.surge,
                new.as_ref().map(as_set).as_ref(),
                &old_sets,
            );
            scaler.apply(&changes, &owned).await?;
        } else {
            if new.is_none() {
                match create_new(&api, &d, &ctx, max_old + 1, replicas + bounds.surge).await? {
                    Some(created) => {
                        step = Step::CreatedNewSet;
                        new = Some(created);
                    }
                    None => return Ok(Action::requeue(Duration::from_millis(100))),
                }
            }
            let Some(current) = new.as_ref() else {
                return Ok(Action::await_change());
            };
            sync_revision(
                &api,
                &d,
                &ctx,
                current,
                max_old,
                replicas,
                replicas + bounds.surge,
            )
            .await?;
            let new_set = as_set(current);
            let old_sets: Vec<Set> = old.iter().map(|rs| as_set(rs)).collect();
            let recreate =
                spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate");
            let changes = if recreate {
                rollout::recreate(replicas, &new_set, &old_sets)
            } else {
                rollout::rolling(replicas, bounds, &new_set, &old_sets)
            };
            let mut all = owned.clone();
            if step == Step::CreatedNewSet {
                all.push(Arc::new(current.clone()));
            }
            scaler.apply(&changes, &all).await?;
        }
    }

    let now = jiff::Timestamp::now();
    let mut everything: Vec<&ReplicaSet> = old.iter().map(AsRef::as_ref).collect();
    if let Some(n) = new.as_ref() {
        everything.push(n);
    }
    let status = status::compute(&d, new.as_ref(), &everything, bounds.unavailable, step, now);
    let complete = status
        .conditions
        .as_deref()
        .and_then(|c| c.iter().find(|c| c.type_ == "Progressing"))
        .is_some_and(|c| c.reason.as_deref() == Some(status::COMPLETE));
    if complete {
        let olds: Vec<&ReplicaSet> = old.iter().map(AsRef::as_ref).collect();
        for rs in revision::expired(&olds, spec.revision_history_limit.unwrap_or(10)) {
            match api
                .delete(&rs.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => {
                    tracing::debug!(deployment = %key, replicaset = %rs.name_any(), "pruned from the revision history")
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    return Err(ControllerError::api(
                        "delete",
                        format!("ReplicaSet {}/{}", ns, rs.name_any()),
                        e,
                    ));
                }
            }
        }
    }
    if d.status.as_ref() != Some(&status) {
        Api::<Deployment>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
            .map_err(|e| ControllerError::api("patch status of", format!("Deployment {key}"), e))?;
    }
    ctx.backoff.succeeded(&key);
    Ok(match status::deadline_left(&d, &status, now) {
        Some(left) => Action::requeue(Duration::from_secs(left.unsigned_abs() + 1)),
        None => Action::await_change(),
    })
}

/// Creates the new ReplicaSet (with no replicas: the rollout grows it). Answers `None` when a
/// set of that name exists with another template (a hash collision: the status's
/// `collisionCount` grows and the next try takes another name).
async fn create_new(
    api: &Api<ReplicaSet>,
    d: &Deployment,
    ctx: &Context,
    revision: i64,
    max: i32,
) -> Result<Option<ReplicaSet>, ControllerError> {
    let spec = d.spec.clone().unwrap_or_default();
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = revision::template_hash(&spec.template, collisions);
    let set = revision::new_set(d, &hash, revision, 0, max);
    let name = set.name_any();
    match api.create(&PostParams::default(), &set).await {
        Ok(created) => {
            let message = format!("Scaled up replica set {name} from 0 to 0");
            tracing::info!(deployment = %key_of(d), replicaset = %name, revision, "new replica set");
            ctx.recorder
                .record(&Involved::of(d), "Normal", "ScalingReplicaSet", &message)
                .await;
            Ok(Some(created))
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let existing = api
                .get(&name)
                .await
                .map_err(|e| ControllerError::api("get", format!("ReplicaSet {name}"), e))?;
            let ours = controller_of(&existing.metadata)
                .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
            let same = existing
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .is_some_and(|t| revision::same_template(t, &spec.template));
            if ours && same {
                return Ok(Some(existing));
            }
            let count = collisions.unwrap_or(0) + 1;
            tracing::warn!(deployment = %key_of(d), replicaset = %name, count, "pod-template-hash collision");
            Api::<Deployment>::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default())
                .patch_status(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"collisionCount": count}})),
                )
                .await
                .map_err(|e| {
                    ControllerError::api("patch status of", format!("Deployment {}", key_of(d)), e)
                })?;
            Ok(None)
        }
        Err(e) => Err(ControllerError::api(
            "create",
            format!("ReplicaSet {name}"),
            e,
        )),
    }
}

/// Keeps the revision annotations current: the new set's revision above every old one (a
/// rollback makes an old template new again), the Deployment's annotation equal to it.
async fn sync_revision(
    api: &Api<ReplicaSet>,
    d: &Deployment,
    ctx: &Context,
    new: &ReplicaSet,
    max_old: i64,
    replicas: i32,
    max: i32,
) -> Result<(), ControllerError> {
    let mut revision = revision::revision_of(&new.metadata);
    if revision <= max_old {
        revision = max_old + 1;
        let mut annotations = revision::annotations(d, revision, replicas, max);
        for k in [DESIRED_REPLICAS, MAX_REPLICAS] {
            if let Some(v) = new.annotations().get(k) {
                annotations.insert(k.into(), v.clone());
            }
        }
        api.patch(
            &new.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": annotations}})),
        )
        .await
        .map_err(|e| ControllerError::api("patch", format!("ReplicaSet {}", new.name_any()), e))?;
    }
    if d.annotations().get(REVISION).map(String::as_str) != Some(revision.to_string().as_str()) {
        Api::<Deployment>::namespaced(ctx.client.clone(), &d.namespace().unwrap_or_default())
            .patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(
                    &json!({"metadata": {"annotations": {REVISION: revision.to_string()}}}),
                ),
            )
            .await
            .map_err(|e| ControllerError::api("patch", format!("Deployment {}", key_of(d)), e))?;
    }
    Ok(())
}

/// Writes scale changes to ReplicaSets, with the sizing annotations and an Event each.
struct Scaler<'a> {
    api: &'a Api<ReplicaSet>,
    d: &'a Deployment,
    ctx: &'a Context,
    max: i32,
}

impl Scaler<'_> {
    async fn apply(
        &self,
        changes: &[rollout::Scale],
        sets: &[Arc<ReplicaSet>],
    ) -> Result<(), ControllerError> {
        let replicas = self.d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        for (name, to) in changes {
            let from = sets
                .iter()
                .find(|rs| &rs.name_any() == name)
                .and_then(|rs| rs.spec.as_ref())
                .and_then(|s| s.replicas)
                .unwrap_or(0);
            let patch = json!({
                "metadata": {"annotations": {DESIRED_REPLICAS: replicas.to_string(), MAX_REPLICAS: self.max.to_string()}},
                "spec": {"replicas": to},
            });
            self.api
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| ControllerError::api("scale", format!("ReplicaSet {name}"), e))?;
            let direction = if *to > from { "up" } else { "down" };
            let message = format!("Scaled {direction} replica set {name} from {from} to {to}");
            tracing::info!(deployment = %key_of(self.d), "{message}");
            self.ctx
                .recorder
                .record(
                    &Involved::of(self.d),
                    "Normal",
                    "ScalingReplicaSet",
                    &message,
                )
                .await;
        }
        Ok(())
    }
}
