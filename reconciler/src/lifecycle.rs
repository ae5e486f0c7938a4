//! Node lifecycle, as kube-controller-manager's node lifecycle controller does it: a node
//! whose Lease is not renewed within the grace period gets Ready `Unknown` and the
//! `node.kubernetes.io/unreachable` taints; a node reporting NotReady gets the `not-ready`
//! ones; a cordoned node gets `unschedulable:NoSchedule`; a node that is back loses them. Pods
//! on a node with a NoExecute taint they do not tolerate are evicted, those that tolerate it
//! for a while when their `tolerationSeconds` run out. A pod left terminating on a node that
//! does not exist is deleted for good (the pod garbage collector's rule for orphans).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use ferry_client::events::{Involved, Recorder};

use crate::controllers::cached_pod::CachedPod;

/// The taint of a node whose agent stopped renewing its Lease.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node that reports NotReady.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The taint of a cordoned node.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// The controller's timings.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleSettings {
    /// How long a Lease may go unrenewed (40 s, as kube-controller-manager).
    pub grace: Duration,
    /// How often nodes are looked at (5 s).
    pub period: Duration,
}

impl Default for LifecycleSettings {
    fn default() -> LifecycleSettings {
        LifecycleSettings {
            grace: Duration::from_secs(40),
            period: Duration::from_secs(5),
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn seconds_since(stamp: &str) -> Option<i64> {
    let t: jiff::Timestamp = stamp.parse().ok()?;
    Some(jiff::Timestamp::now().as_second() - t.as_second())
}

/// What a node should look like: (Ready condition to write, if it must change; the taints it
/// should carry).
/// `watched_for` is how long this controller has watched the node: like kube-controller-manager,
/// it gives every node the grace period from when it first saw it (a node that registered just
/// now has no Lease yet; a controller that just started has seen no renewal).
fn judge(
    node: &core::Node,
    lease: Option<&Lease>,
    grace: Duration,
    watched_for: Duration,
) -> (Option<Value>, Vec<Value>) {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0.as_second());
    let fresh = watched_for <= grace
        || renewed
            .is_some_and(|r| jiff::Timestamp::now().as_second() - r <= grace.as_secs() as i64);
    let mut condition = None;
    let status = ready.map(|c| c.status.as_str()).unwrap_or("Unknown");
    let effective = if fresh { status } else { "Unknown" };
    if !fresh && status != "Unknown" {
        condition = Some(json!({
            "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": ready.and_then(|c| c.last_heartbeat_time.as_ref()).map(|t| t.0.to_string()),
            "lastTransitionTime": now(),
        }));
    }
    let existing: Vec<&core::Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .collect();
    let keep_time = |key: &str, effect: &str| {
        existing
            .iter()
            .find(|t| t.key == key && t.effect == effect)
            .and_then(|t| t.time_added.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(now)
    };
    let mut taints: Vec<Value> = existing
        .iter()
        .filter(|t| ![UNREACHABLE, NOT_READY, UNSCHEDULABLE].contains(&t.key.as_str()))
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    let managed = match effective {
        "True" => None,
        "False" => Some(NOT_READY),
        // A node that has not reported Ready yet (it registered just now) is given its grace
        // period, as Kubernetes gives it: no taint until then.
        _ if ready.is_none() && fresh => None,
        _ => Some(UNREACHABLE),
    };
    if let Some(key) = managed {
        for effect in ["NoSchedule", "NoExecute"] {
            taints.push(json!({"key": key, "effect": effect, "timeAdded": keep_time(key, effect)}));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        taints.push(json!({"key": UNSCHEDULABLE, "effect": "NoSchedule", "timeAdded": keep_time(UNSCHEDULABLE, "NoSchedule")}));
    }
    (condition, taints)
}

/// How long a pod may stay on a node with these NoExecute taints: `Some(0)` now, `Some(n)`
/// after n seconds since the taint was added, `None` never.
fn eviction_in(pod: &CachedPod, taints: &[core::Taint]) -> Option<i64> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let tolerations = tolerations.as_slice();
    let mut soonest: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let tolerating = tolerations.iter().filter(|t| {
            let effect_ok = t
                .effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "NoExecute");
            let key_ok = match t.key.as_deref() {
                None | Some("") => t.operator.as_deref() == Some("Exists"),
                Some(k) => {
                    k == taint.key
                        && (t.operator.as_deref() == Some("Exists")
                            || t.value.as_deref().unwrap_or_default()
                                == taint.value.as_deref().unwrap_or_default())
                }
            };
            effect_ok && key_ok
        });
        let mut allowed: Option<Option<i64>> = None;
        for t in tolerating {
            let seconds = t.toleration_seconds;
            allowed = Some(match (allowed.flatten(), seconds) {
                (_, None) => None,
                (Some(a), Some(s)) => Some(a.max(s)),
                (None, Some(s)) => Some(s),
            });
            if seconds.is_none() {
                break;
            }
        }
        let elapsed = taint
            .time_added
            .as_ref()
            .and_then(|t| seconds_since(&t.0.to_string()))
            .unwrap_or(0);
        let left = match allowed {
            None => 0,
            Some(None) => continue,
            Some(Some(s)) => (s - elapsed).max(0),
        };
        soonest = Some(soonest.map_or(left, |x| x.min(left)));
    }
    soonest
}

/// How long node events are gathered before a pass they asked for.
const NODE_EVENT_GATHER: Duration = Duration::from_millis(50);

/// The controllers' shared caches node lifecycle reads: pods (as
/// `controllers::cached_pod::CachedPod`, which keeps the node, tolerations and deletion state this loop
/// reads) and nodes, with a stream of node changes, so that each is watched and held once in
/// the process.
pub struct SharedCaches {
    /// Every pod.
    pub pods: Store<CachedPod>,
    /// Every node.
    pub nodes: Store<core::Node>,
    /// One item per node change (added, modified, deleted).
    pub node_changes: futures::stream::BoxStream<'static, ()>,
}

/// Runs the controller until `cancel` fires.
pub async fn run(
    client: kube::Client,
    settings: LifecycleSettings,
    caches: SharedCaches,
    cancel: CancellationToken,
) {
    let SharedCaches {
        pods,
        nodes,
        node_changes,
    } = caches;
    let (leases, lease_writer) = reflector::store::<Lease>();
    // A node that changed (Ready again, cordoned) is looked at at once, not at the next tick,
    // as kube-controller-manager's taint passes follow node updates.
    let changed = Arc::new(tokio::sync::Notify::new());
    let node_changed = changed.clone();
    let drive = |stream: futures::stream::BoxStream<'static, ()>| {
        tokio::spawn(stream.for_each(|()| async {}))
    };
    let node_stream = node_changes
        .map(move |()| node_changed.notify_one())
        .boxed();
    let lease_stream = reflector::reflector(
        lease_writer,
        watcher(
            Api::<Lease>::namespaced(client.clone(), "kube-node-lease"),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .map(|_| ())
    .boxed();
    let tasks = [drive(node_stream), drive(lease_stream)];
    let recorder = Recorder::new(client.clone(), "node-controller", "");
    let mut tick = tokio::time::interval(settings.period);
    let mut first_seen: std::collections::HashMap<String, tokio::time::Instant> =
        std::collections::HashMap::new();
    tracing::info!(grace_s = settings.grace.as_secs(), "node lifecycle started");
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = tick.tick() => {}
            () = changed.notified() => {
                // A burst of node events is looked at once.
                tokio::time::sleep(NODE_EVENT_GATHER).await;
            }
        }
        if let Err(e) = nodes.wait_until_ready().await {
            tracing::warn!(error = %e, "the node cache is not ready");
            continue;
        }
        if let Err(e) = pods.wait_until_ready().await {
            tracing::warn!(error = %e, "the pod cache is not ready");
            continue;
        }
        monitor(
            &client,
            &nodes,
            &leases,
            &pods,
            settings,
            &recorder,
            &mut first_seen,
        )
        .await;
    }
    for t in tasks {
        t.abort();
    }
}

async fn monitor(
    client: &kube::Client,
    nodes: &Store<core::Node>,
    leases: &Store<Lease>,
    pods: &Store<CachedPod>,
    settings: LifecycleSettings,
    recorder: &Recorder,
    first_seen: &mut std::collections::HashMap<String, tokio::time::Instant>,
) {
    let leases: BTreeMap<String, Arc<Lease>> = leases
        .state()
        .into_iter()
        .filter_map(|l| Some((l.metadata.name.clone()?, l)))
        .collect();
    let node_api: Api<core::Node> = Api::all(client.clone());
    let names: std::collections::HashSet<String> = nodes
        .state()
        .iter()
        .filter_map(|n| n.metadata.name.clone())
        .collect();
    first_seen.retain(|name, _| names.contains(name));
    // The live pods of each node, grouped once (not a scan of every pod per tainted node).
    let all_pods = pods.state();
    let mut by_node: std::collections::HashMap<&str, Vec<&Arc<CachedPod>>> =
        std::collections::HashMap::new();
    for pod in all_pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        if let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            by_node.entry(node).or_default().push(pod);
        }
    }
    // A pod bound to a node that does not exist stays Pending; say why.
    for pod in all_pods.iter().filter(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_none_or(|phase| phase == "Pending")
    }) {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if !names.contains(node) {
            recorder
                .record(
                    &Involved::of(pod.as_ref()),
                    "Warning",
                    "NodeNotFound",
                    &format!(
                        "node {node:?} does not exist; the pod stays Pending until a node of that name registers"
                    ),
                )
                .await;
        }
    }
    // A pod being deleted on a node that does not exist has no agent to finish the deletion:
    // it is deleted for good, as the pod garbage collector does.
    for pod in all_pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some())
    {
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
            continue;
        };
        if names.contains(node) {
            continue;
        }
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<core::Pod> = Api::namespaced(client.clone(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&pod_name, &params).await {
            Ok(_) => {
                tracing::info!(pod = %format!("{ns}/{pod_name}"), node = %node, "deleted a terminating pod whose node does not exist");
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => {
                tracing::warn!(pod = %pod_name, error = %e, "an orphaned pod could not be deleted; retried")
            }
        }
    }
    for node in nodes.state() {
        let name = node.metadata.name.clone().unwrap_or_default();
        let watched_for = first_seen
            .entry(name.clone())
            .or_insert_with(tokio::time::Instant::now)
            .elapsed();
        let (condition, taints) = judge(
            &node,
            leases.get(&name).map(Arc::as_ref),
            settings.grace,
            watched_for,
        );
        let current: Vec<Value> = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        if let Some(condition) = condition {
            tracing::warn!(node = %name, "the node stopped renewing its lease: Ready is Unknown");
            let patch = json!({"status": {"conditions": [condition]}});
            if let Err(e) = node_api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                tracing::warn!(node = %name, error = %e, "the node's Ready condition could not be written");
            }
            recorder
                .record(
                    &Involved::node(&name, node.metadata.uid.as_deref().unwrap_or_default()),
                    "Normal",
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                )
                .await;
        }
        if taints != current {
            let patch = json!({"spec": {"taints": taints}});
            if let Err(e) = node_api
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                tracing::warn!(node = %name, error = %e, "the node's taints could not be written");
            }
        }
        // Evictions, from the taints the node carries now.
        let carried: Vec<core::Taint> = taints
            .iter()
            .filter_map(|t| serde_json::from_value(t.clone()).ok())
            .collect();
        if !carried.iter().any(|t| t.effect == "NoExecute") {
            continue;
        }
        for pod in by_node.get(name.as_str()).into_iter().flatten() {
            if eviction_in(pod, &carried) == Some(0) {
                let ns = pod.metadata.namespace.clone().unwrap_or_default();
                let pod_name = pod.metadata.name.clone().unwrap_or_default();
                tracing::info!(node = %name, pod = %format!("{ns}/{pod_name}"), "evicting a pod from a NoExecute-tainted node");
                let api: Api<core::Pod> = Api::namespaced(client.clone(), &ns);
                match api.delete(&pod_name, &DeleteParams::default()).await {
                    Ok(_) => {
                        recorder
                            .record(
                                &Involved::of(pod.as_ref()),
                                "Normal",
                                "TaintManagerEviction",
                                &format!("Marking for deletion Pod {ns}/{pod_name}"),
                            )
                            .await;
                    }
                    Err(e) => {
                        tracing::warn!(pod = %pod_name, error = %e, "an eviction failed; retried")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: &str, unschedulable: bool) -> core::Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable, "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]},
            "status": {"conditions": [{"type": "Ready", "status": ready}]},
        }))
        .expect("node")
    }

    fn lease(age_s: i64) -> Lease {
        let t = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(age_s);
        serde_json::from_value(json!({"metadata": {"name": "n"}, "spec": {"renewTime": t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}}))
            .expect("lease")
    }

    #[test]
    fn stale_leases_make_nodes_unknown_and_tainted_and_fresh_ones_clear_it() {
        let grace = Duration::from_secs(40);
        let long = Duration::from_secs(3600);
        let (condition, taints) = judge(&node("True", false), Some(&lease(60)), grace, long);
        assert_eq!(condition.expect("a condition")["status"], "Unknown");
        let keys: Vec<(&str, &str)> = taints
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or_default(),
                    t["effect"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                ("dedicated", "NoSchedule"),
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute")
            ]
        );
        let (condition, taints) = judge(&node("True", true), Some(&lease(1)), grace, long);
        assert!(condition.is_none());
        assert_eq!(
            taints.len(),
            2,
            "the user's taint and the cordon: {taints:?}"
        );
        assert_eq!(taints[1]["key"], UNSCHEDULABLE);
        let (_, taints) = judge(&node("False", false), Some(&lease(1)), grace, long);
        assert!(taints.iter().any(|t| t["key"] == NOT_READY));
        // A node without a Lease yet, seen just now, is given the grace period.
        let (condition, _) = judge(&node("True", false), None, grace, Duration::from_secs(1));
        assert!(condition.is_none());
        let (condition, _) = judge(&node("True", false), None, grace, long);
        assert!(condition.is_some());
        // A node that registered just now and has not reported Ready carries no taint of
        // ours within its grace period; past it, it is unreachable.
        let mut fresh: core::Node = node("True", false);
        fresh.status = None;
        let (_, taints) = judge(&fresh, None, grace, Duration::from_secs(1));
        assert!(taints.iter().all(|t| t["key"] != UNREACHABLE), "{taints:?}");
        let (_, taints) = judge(&fresh, None, grace, long);
        assert!(taints.iter().any(|t| t["key"] == UNREACHABLE), "{taints:?}");
    }

    #[test]
    fn evictions_follow_toleration_seconds() {
        let taint: core::Taint = serde_json::from_value(
            json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now()}),
        )
        .expect("taint");
        let pod = |tolerations: Value| -> CachedPod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [], "tolerations": tolerations}})).expect("pod")
        };
        assert_eq!(
            eviction_in(&pod(json!([])), std::slice::from_ref(&taint)),
            Some(0)
        );
        assert_eq!(
            eviction_in(
                &pod(
                    json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}])
                ),
                std::slice::from_ref(&taint)
            ),
            Some(300)
        );
        assert_eq!(
            eviction_in(
                &pod(json!([{"operator": "Exists"}])),
                std::slice::from_ref(&taint)
            ),
            None
        );
    }
}
