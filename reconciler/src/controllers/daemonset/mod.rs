//! The DaemonSet controller: one pod per eligible node ([`nodes`]), following nodes as they
//! join, leave or change labels and taints; the template's history as ControllerRevisions
//! ([`super::history`]); RollingUpdate (maxUnavailable, maxSurge) and OnDelete
//! ([`update`]); the status `kubectl rollout status ds` reads.

pub mod nodes;
pub mod update;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use ferry_client::events::{Involved, Recorder};
use ferry_schema::intstr::scaled;
use ferry_schema::selector::LabelSelector;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::error::{Backoff, ControllerError};
use super::expectations::Expectations;
use super::history::{self, HASH_LABEL};
use super::informer::Informer;
use super::owner::{self, controller_ref, key_of};
use super::pods;
use super::runner;
use crate::controllers::cached_pod::CachedPod;
use update::{NodePods, Strategy};

/// What every DaemonSet reconcile shares.
struct Context {
    client: kube::Client,
    pods: Store<CachedPod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    backoff: Backoff,
    recorder: Recorder,
}

impl runner::Shared for Context {
    fn backoff(&self) -> &Backoff {
        &self.backoff
    }
}

fn selector_of(ds: &DaemonSet) -> Result<LabelSelector, ControllerError> {
    runner::parse_selector(ds, ds.spec.as_ref().map(|s| &s.selector))
}

/// The caches the DaemonSet controller reads.
pub struct Caches<'a> {
    /// Pods (slim).
    pub pods: &'a Informer<CachedPod>,
    /// Nodes.
    pub nodes: &'a Informer<Node>,
    /// ControllerRevisions.
    pub revisions: &'a Informer<ControllerRevision>,
}

/// The DaemonSet controller; runs until `cancel`.
pub fn controller(
    client: kube::Client,
    caches: Caches<'_>,
    recorder: Recorder,
    cancel: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let controller = runner::controller(Api::<DaemonSet>::all(client.clone()));
    let sets = controller.store();
    let by_pod = {
        let sets = sets.clone();
        caches
            .pods
            .subscribe(move |pod| runner::owners_of(pod, &sets, selector_of))
    };
    // A node joining, leaving or changing concerns every DaemonSet.
    let by_node = caches.nodes.subscribe(move |_node: &Node| {
        sets.state()
            .iter()
            .map(|ds| ObjectRef::from_obj(ds.as_ref()))
            .collect()
    });
    let ctx = Arc::new(Context {
        client,
        pods: caches.pods.store(),
        nodes: caches.nodes.store(),
        revisions: caches.revisions.store(),
        expectations: Expectations::default(),
        backoff: Backoff::default(),
        recorder,
    });
    runner::drive(
        controller,
        futures::stream::select(by_pod, by_node).boxed(),
        reconcile,
        ctx,
        cancel,
    )
}

#[tracing::instrument(level = "debug", skip_all, fields(daemonset = %key_of(ds.as_ref())))]
async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Context>) -> Result<Action, ControllerError> {
    let key = key_of(ds.as_ref());
    let ns = ds.namespace().unwrap_or_default();
    let invalid = |message: &str| ControllerError::Invalid {
        what: format!("DaemonSet {key}"),
        message: message.into(),
    };
    let spec = ds.spec.as_ref().ok_or_else(|| invalid("no spec"))?;
    let selector = runner::non_empty(ds.as_ref(), selector_of(&ds)?)?;
    // The caches must hold every node and revision before nodes are judged.
    if ctx.nodes.wait_until_ready().await.is_err()
        || ctx.revisions.wait_until_ready().await.is_err()
    {
        return Ok(Action::await_change());
    }
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let candidates = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()));
    let cached_api: Api<CachedPod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut owned =
        owner::claim_and_settle(&cached_api, ds.as_ref(), &selector, candidates).await?;

    // The template's revision.
    let revisions = history::owned_by(ds.as_ref(), ctx.revisions.state());
    let used: HashSet<String> = owned
        .iter()
        .filter_map(|p| p.labels().get(HASH_LABEL).cloned())
        .collect();
    let limit = spec.revision_history_limit.unwrap_or(10);
    let current = history::sync(
        &ctx.client,
        ds.as_ref(),
        &spec.template,
        &revisions,
        limit,
        &used,
    )
    .await?;

    // The pod spec every node is judged with: the template and the daemon tolerations.
    let mut pod_spec = spec.template.spec.clone().unwrap_or_default();
    nodes::with_daemon_tolerations(&mut pod_spec);
    let affinity = nodes::selector_of(&pod_spec)
        .transpose()
        .map_err(|source| ControllerError::Selector {
            what: format!("DaemonSet {key} (node affinity)"),
            source,
        })?;

    // Each node, and the pods on it; failed pods are deleted to be made again.
    let mut by_node: BTreeMap<String, NodePods> = BTreeMap::new();
    for node in ctx.nodes.state() {
        let name = node.name_any();
        by_node.insert(
            name.clone(),
            NodePods {
                fit: nodes::fit(&pod_spec, affinity.as_ref(), &node),
                node: name,
                new: Vec::new(),
                old: Vec::new(),
            },
        );
    }
    let mut failed = Vec::new();
    let mut orphaned = Vec::new();
    owned.sort_by_key(|p| p.creation_timestamp().map(|t| t.0));
    for pod in owned {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Failed" | "Succeeded")) {
            failed.push(pod);
            continue;
        }
        match nodes::node_of(&pod).and_then(|n| by_node.get_mut(&n)) {
            Some(n) if pod.labels().get(HASH_LABEL) == Some(&current.hash) => n.new.push(pod),
            Some(n) => n.old.push(pod),
            // Its node is gone.
            None => orphaned.push(pod),
        }
    }
    let nodes: Vec<NodePods> = by_node.into_values().collect();
    let now = jiff::Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let available = |p: &CachedPod| pods::is_available(p, min_ready, now);
    let desired = nodes.iter().filter(|n| n.fit.should_run).count() as i32;
    let strategy = strategy_of(&ds, desired).map_err(|e| invalid(&e))?;
    let plan = update::plan(&nodes, strategy, available);

    let about = Involved::of(ds.as_ref());
    let satisfied = ctx.expectations.satisfied(&key, |name| {
        ctx.pods.get(&ObjectRef::new(name).within(&ns)).is_some()
    });
    if satisfied && ds.metadata.deletion_timestamp.is_none() {
        let mut doomed = plan.delete.clone();
        doomed.extend(failed.iter().cloned());
        doomed.extend(orphaned.iter().cloned());
        if !doomed.is_empty() {
            let (deleted, failure) = pods::delete_all(&pod_api, &doomed).await;
            for name in &deleted {
                let message = format!("Deleted pod: {name}");
                ctx.recorder
                    .record(&about, "Normal", "SuccessfulDelete", &message)
                    .await;
            }
            if let Some(e) = failure {
                return Err(e);
            }
        }
        if !plan.create_on.is_empty() {
            let new: Vec<Pod> = plan
                .create_on
                .iter()
                .map(|node| new_pod(&ds, &current.hash, node))
                .collect();
            let created = pods::create_each(&pod_api, new).await;
            for name in &created.names {
                let message = format!("Created pod: {name}");
                ctx.recorder
                    .record(&about, "Normal", "SuccessfulCreate", &message)
                    .await;
            }
            ctx.expectations.created(&key, created.names);
            if let Some(e) = created.failure {
                ctx.recorder
                    .record(&about, "Warning", "FailedCreate", &e.to_string())
                    .await;
                return Err(e);
            }
        }
    }

    // Status.
    let mut status = update::counters(&nodes, available, pods::is_ready);
    status.observed_generation = ds.metadata.generation;
    status.collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    if ds.status.as_ref() != Some(&status) {
        let mut body = json!({"status": status});
        for optional in [
            "numberAvailable",
            "numberUnavailable",
            "updatedNumberScheduled",
        ] {
            if body["status"].get(optional).is_none() {
                body["status"][optional] = json!(0);
            }
        }
        Api::<DaemonSet>::namespaced(ctx.client.clone(), &ns)
            .patch_status(
                &ds.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&body),
            )
            .await
            .map_err(|e| ControllerError::api("patch status of", format!("DaemonSet {key}"), e))?;
    }
    ctx.backoff.succeeded(&key);
    // A pod that is ready but not yet available for minReadySeconds is looked at again then.
    Ok(pods::until_available(
        nodes.iter().flat_map(|n| n.new.iter().chain(&n.old)),
        min_ready,
        now,
    ))
}

/// The update strategy with its bounds resolved against `desired` nodes (percentages round
/// up; with both zero, one node at a time may be down, as the apiserver's validation would
/// have it).
fn strategy_of(ds: &DaemonSet, desired: i32) -> Result<Strategy, String> {
    let strategy = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.clone())
        .unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return Ok(Strategy::OnDelete);
    }
    let rolling = strategy.rolling_update.unwrap_or_default();
    let unavailable = rolling.max_unavailable.unwrap_or(IntOrString::Int(1));
    let surge = rolling.max_surge.unwrap_or(IntOrString::Int(0));
    let max_unavailable = scaled(&unavailable, desired, true).map_err(|e| e.to_string())?;
    let max_surge = scaled(&surge, desired, true).map_err(|e| e.to_string())?;
    Ok(Strategy::RollingUpdate {
        max_unavailable: if max_unavailable == 0 && max_surge == 0 {
            1
        } else {
            max_unavailable
        },
        max_surge,
    })
}

/// The pod for `node`: the template with the revision's hash, the daemon tolerations, pinned
/// to the node.
fn new_pod(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pods::from_template(&template, controller_ref(ds), &ds.name_any());
    pod.metadata
        .labels
        .get_or_insert_default()
        .insert(HASH_LABEL.into(), hash.into());
    let spec = pod.spec.get_or_insert_default();
    nodes::with_daemon_tolerations(spec);
    nodes::pin(spec, node);
    pod
}
