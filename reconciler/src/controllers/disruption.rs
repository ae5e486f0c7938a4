//! The disruption controller: a PodDisruptionBudget's status, which the apiserver's eviction
//! subresource spends (`kubectl drain` evicts through it): the pods it expects (from their
//! controllers' scale when a percentage or `maxUnavailable` asks for it), how many are
//! healthy (Ready, not being deleted, not just evicted), how many must be, and the
//! disruptions allowed. Evicted pods are listed in `disruptedPods` until they are gone, or for
//! two minutes. Status writes carry the budget's resourceVersion, so a stale view never
//! undoes an eviction's spending.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ferry_schema::intstr::scaled;
use ferry_schema::selector::LabelSelector;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::informer::Informer;
use super::owner::{controller_of, key_of};
use super::pods;
use super::runner;
use crate::controllers::cached_pod::CachedPod;

/// How long an evicted pod counts as disrupted if it does not go.
const DISRUPTION_TIMEOUT: i64 = 120;

struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    backoff: Backoff,
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

/// A budget's selector; in policy/v1 an empty one selects every pod of the namespace.
fn selector_of(pdb: &PodDisruptionBudget) -> Result<LabelSelector, ControllerError> {
    runner::parse_selector(pdb, pdb.spec.as_ref().and_then(|s| s.selector.as_ref()))
}

/// The disruption controller, subscribed to `pods`; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    pods: &Informer<CachedPod>,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = runner::controller(Api::<PodDisruptionBudget>::all(client.clone()));
    let budgets = controller.store();
    let triggers = pods.subscribe(move |pod: &CachedPod| {
        runner::in_namespace_of(pod, &budgets, |b, pod| {
            selector_of(b).is_ok_and(|s| s.matches_labels(pod.labels()))
        })
    });
    let ctx = Arc::new(Context {
        client,
        pods: pods.store(),
        backoff: Backoff::default(),
    });
    runner::drive(controller, triggers, reconcile, ctx, cancel)
}

#[tracing::instrument(level = "debug", skip_all, fields(pdb = %key_of(pdb.as_ref())))]
async fn reconcile(
    pdb: Arc<PodDisruptionBudget>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let key = key_of(pdb.as_ref());
    let ns = pdb.namespace().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let selector = selector_of(&pdb)?;
    let selected: Vec<Arc<CachedPod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| selector.matches_labels(p.labels()))
        .filter(|p| {
            !matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        })
        .collect();
    let now = jiff::Timestamp::now();
    let old = pdb.status.clone().unwrap_or_default();
    // Evicted pods still around (not yet marked for deletion) for at most two minutes.
    let mut disrupted: BTreeMap<String, Time> = BTreeMap::new();
    for (name, at) in old.disrupted_pods.clone().unwrap_or_default() {
        let alive = selected
            .iter()
            .any(|p| p.name_any() == name && p.metadata.deletion_timestamp.is_none());
        if alive && now.as_second() - at.0.as_second() < DISRUPTION_TIMEOUT {
            disrupted.insert(name, at);
        }
    }
    let healthy = selected
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && pods::is_ready(p))
        .filter(|p| !disrupted.contains_key(&p.name_any()))
        .count() as i32;
    let expected = expected_pods(&ctx.client, &spec, &selected).await?;
    let desired = match (&spec.min_available, &spec.max_unavailable) {
        (Some(min), _) => scaled(min, expected, true).map_err(|e| invalid(&key, e))?,
        (None, Some(max)) => {
            (expected - scaled(max, expected, true).map_err(|e| invalid(&key, e))?).max(0)
        }
        (None, None) => 0,
    };
    let allowed = (healthy - desired).max(0);
    let condition = Condition {
        type_: "DisruptionAllowed".into(),
        status: if allowed > 0 { "True" } else { "False" }.into(),
        reason: if allowed > 0 {
            "SufficientPods"
        } else {
            "InsufficientPods"
        }
        .into(),
        message: String::new(),
        observed_generation: pdb.metadata.generation,
        last_transition_time: old
            .conditions
            .iter()
            .flatten()
            .find(|c| {
                c.type_ == "DisruptionAllowed"
                    && c.status == if allowed > 0 { "True" } else { "False" }
            })
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now)),
    };
    let status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then(|| disrupted.clone()),
        observed_generation: pdb.metadata.generation,
        conditions: Some(vec![condition]),
    };
    if pdb.status.as_ref() != Some(&status) {
        let mut body = json!({
            "metadata": {"resourceVersion": pdb.resource_version()},
            "status": status,
        });
        // The listed pods are a map: the ones dropped are removed by name.
        let mut listed: serde_json::Map<String, Value> = disrupted
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        for gone in old.disrupted_pods.iter().flatten().map(|(k, _)| k) {
            listed.entry(gone.clone()).or_insert(Value::Null);
        }
        body["status"]["disruptedPods"] = Value::Object(listed);
        Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &pdb.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
            .map_err(|e| {
                ControllerError::api("patch status of", format!("PodDisruptionBudget {key}"), e)
            })?;
    }
    ctx.backoff.succeeded(&key);
    // A listed pod that does not go stops counting after the timeout.
    let next = disrupted
        .values()
        .map(|at| at.0.as_second() + DISRUPTION_TIMEOUT - now.as_second())
        .min();
    Ok(match next {
        Some(s) => Action::requeue(Duration::from_secs(s.max(1) as u64)),
        None => Action::await_change(),
    })
}

fn invalid(key: &str, e: impl std::fmt::Display) -> ControllerError {
    ControllerError::Invalid {
        what: format!("PodDisruptionBudget {key}"),
        message: e.to_string(),
    }
}

/// The pods the budget expects: the number selected for an integer `minAvailable`, else the
/// scale of their controllers (a Deployment's for a ReplicaSet it owns), a pod without one
/// counting as one.
async fn expected_pods(
    client: &kube::Client,
    spec: &k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec,
    selected: &[Arc<CachedPod>],
) -> Result<i32, ControllerError> {
    if matches!(spec.min_available, Some(IntOrString::Int(_))) {
        return Ok(selected.len() as i32);
    }
    let mut scales: HashMap<(String, String), i32> = HashMap::new();
    let mut loose = 0;
    for pod in selected {
        let ns = pod.namespace().unwrap_or_default();
        let Some(owner) = controller_of(&pod.metadata) else {
            loose += 1;
            continue;
        };
        let id = (owner.kind.clone(), owner.name.clone());
        if scales.contains_key(&id) {
            continue;
        }
        let replicas = match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), &ns)
                    .get_opt(&owner.name)
                    .await
                    .map_err(|e| {
                        ControllerError::api("read", format!("ReplicaSet {ns}/{}", owner.name), e)
                    })?;
                match rs
                    .as_ref()
                    .and_then(|rs| controller_of(&rs.metadata).filter(|d| d.kind == "Deployment"))
                {
                    Some(d) => {
                        let top = (d.kind.clone(), d.name.clone());
                        if let std::collections::hash_map::Entry::Vacant(slot) = scales.entry(top) {
                            let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
                                .get_opt(&d.name)
                                .await
                                .map_err(|e| {
                                    ControllerError::api(
                                        "read",
                                        format!("Deployment {ns}/{}", d.name),
                                        e,
                                    )
                                })?;
                            slot.insert(deployment.and_then(|d| d.spec?.replicas).unwrap_or(1));
                        }
                        0
                    }
                    None => rs.and_then(|r| r.spec?.replicas).unwrap_or(1),
                }
            }
            "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), &ns)
                .get_opt(&owner.name)
                .await
                .map_err(|e| {
                    ControllerError::api("read", format!("StatefulSet {ns}/{}", owner.name), e)
                })?
                .and_then(|s| s.spec?.replicas)
                .unwrap_or(1),
            "ReplicationController" => {
                Api::<ReplicationController>::namespaced(client.clone(), &ns)
                    .get_opt(&owner.name)
                    .await
                    .map_err(|e| {
                        ControllerError::api(
                            "read",
                            format!("ReplicationController {ns}/{}", owner.name),
                            e,
                        )
                    })?
                    .and_then(|r| r.spec?.replicas)
                    .unwrap_or(1)
            }
            _ => {
                loose += 1;
                continue;
            }
        };
        scales.insert(id, replicas);
    }
    Ok(scales.values().sum::<i32>() + loose)
}
