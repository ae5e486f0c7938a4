//! What a DaemonSet does on each node, decided without the apiserver: a pod where one should
//! run, none where none may stay, one pod per node (duplicates go); and the update strategy:
//! RollingUpdate replacing old pods with `maxUnavailable` nodes down at a time (or, with
//! `maxSurge`, starting the new pod beside the old and deleting the old once the new is
//! available), OnDelete replacing only pods someone deleted. Also the status counters.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSetStatus;

use super::nodes::Fit;
use crate::controllers::cached_pod::CachedPod;

/// One node, and the DaemonSet's active pods on it.
#[derive(Debug, Clone)]
pub struct NodePods {
    /// The node's name.
    pub node: String,
    /// Whether a pod should run or may stay there.
    pub fit: Fit,
    /// Pods of the current revision, oldest first.
    pub new: Vec<Arc<CachedPod>>,
    /// Pods of older revisions, oldest first.
    pub old: Vec<Arc<CachedPod>>,
}

/// The update strategy, resolved against the number of nodes that should run a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Old pods are replaced only when deleted.
    OnDelete,
    /// Old pods are replaced, within these bounds.
    RollingUpdate {
        /// Nodes that may be without an available pod.
        max_unavailable: i32,
        /// Nodes that may run an old and a new pod at once.
        max_surge: i32,
    },
}

/// What to do.
#[derive(Debug, Default)]
pub struct Plan {
    /// Nodes to start a pod of the current revision on.
    pub create_on: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<Arc<CachedPod>>,
}

/// The plan for these nodes.
pub fn plan(
    nodes: &[NodePods],
    strategy: Strategy,
    available: impl Fn(&CachedPod) -> bool,
) -> Plan {
    let mut plan = Plan::default();
    let is_available = |pods: &[Arc<CachedPod>]| pods.iter().any(|p| available(p));
    // Nodes with an available old pod that may be replaced, and how many nodes surge now.
    let mut replaceable: Vec<&NodePods> = Vec::new();
    let mut surging = 0;
    let mut unavailable = 0;
    for n in nodes {
        if !n.fit.may_stay {
            plan.delete.extend(n.new.iter().chain(&n.old).cloned());
            continue;
        }
        // One pod per revision: the oldest stays.
        plan.delete.extend(n.new.iter().skip(1).cloned());
        plan.delete.extend(n.old.iter().skip(1).cloned());
        if !n.fit.should_run {
            continue;
        }
        let (new, old) = (n.new.first(), n.old.first());
        let up = is_available(&n.new) || is_available(&n.old);
        if !up {
            unavailable += 1;
        }
        match (new, old) {
            (None, None) => plan.create_on.push(n.node.clone()),
            (Some(_), None) => {}
            (Some(_), Some(old)) => {
                surging += 1;
                // The new pod is up: the old one goes (whatever the strategy).
                if is_available(&n.new) || strategy == Strategy::OnDelete {
                    plan.delete.push(old.clone());
                }
            }
            (None, Some(old)) => match strategy {
                Strategy::OnDelete => {}
                Strategy::RollingUpdate { max_surge, .. } => {
                    if !available(old) {
                        // Already down: replacing it costs nothing.
                        if max_surge > 0 {
                            plan.create_on.push(n.node.clone());
                        } else {
                            plan.delete.push(old.clone());
                        }
                    } else {
                        replaceable.push(n);
                    }
                }
            },
        }
    }
    if let Strategy::RollingUpdate {
        max_unavailable,
        max_surge,
    } = strategy
    {
        if max_surge > 0 {
            let room = (max_surge - surging).max(0) as usize;
            plan.create_on
                .extend(replaceable.iter().take(room).map(|n| n.node.clone()));
        } else {
            let room = (max_unavailable - unavailable).max(0) as usize;
            plan.delete.extend(
                replaceable
                    .iter()
                    .take(room)
                    .filter_map(|n| n.old.first().cloned()),
            );
        }
    }
    plan
}

/// The status counters `kubectl get ds` and `kubectl rollout status` read.
pub fn counters(
    nodes: &[NodePods],
    available: impl Fn(&CachedPod) -> bool,
    ready: impl Fn(&CachedPod) -> bool,
) -> DaemonSetStatus {
    let mut s = DaemonSetStatus::default();
    for n in nodes {
        let all: Vec<&Arc<CachedPod>> = n.new.iter().chain(&n.old).collect();
        if n.fit.should_run {
            s.desired_number_scheduled += 1;
            if !all.is_empty() {
                s.current_number_scheduled += 1;
            }
            if all.iter().any(|p| ready(p)) {
                s.number_ready += 1;
            }
            if all.iter().any(|p| available(p)) {
                *s.number_available.get_or_insert(0) += 1;
            }
            if !n.new.is_empty() {
                *s.updated_number_scheduled.get_or_insert(0) += 1;
            }
        } else if !all.is_empty() {
            s.number_misscheduled += 1;
        }
    }
    let unavailable = s.desired_number_scheduled - s.number_available.unwrap_or(0);
    s.number_unavailable = (unavailable > 0).then_some(unavailable);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::pods::tests::pod;

    fn node(name: &str, new: &[&str], old: &[&str]) -> NodePods {
        NodePods {
            node: name.into(),
            fit: Fit {
                should_run: true,
                may_stay: true,
            },
            new: new
                .iter()
                .map(|n| pod(n, true, "Running", Some(1), 1))
                .collect(),
            old: old
                .iter()
                .map(|n| pod(n, true, "Running", Some(1), 1))
                .collect(),
        }
    }

    fn names(pods: &[Arc<CachedPod>]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    /// Pods whose name ends in `-down` are not available.
    fn up(p: &CachedPod) -> bool {
        !p.metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .ends_with("-down")
    }

    #[test]
    fn every_eligible_node_gets_one_pod() {
        let mut gone = node("c", &["c1"], &[]);
        gone.fit = Fit {
            should_run: false,
            may_stay: false,
        };
        let nodes = [node("a", &[], &[]), node("b", &["b1", "b2"], &[]), gone];
        let p = plan(&nodes, Strategy::OnDelete, up);
        assert_eq!(p.create_on, ["a"]);
        assert_eq!(names(&p.delete), ["b2", "c1"]);
        let s = counters(&nodes, up, up);
        assert_eq!(s.desired_number_scheduled, 2);
        assert_eq!(s.current_number_scheduled, 1);
        assert_eq!(s.number_misscheduled, 1);
        assert_eq!(s.number_unavailable, Some(1));
    }

    #[test]
    fn rolling_update_takes_max_unavailable_nodes_down_at_a_time() {
        let nodes = [
            node("a", &[], &["a-old"]),
            node("b", &[], &["b-old"]),
            node("c", &[], &["c-old"]),
            node("d", &[], &["d-old-down"]),
        ];
        let strategy = Strategy::RollingUpdate {
            max_unavailable: 2,
            max_surge: 0,
        };
        let p = plan(&nodes, strategy, up);
        // d is already down (counts toward the budget) and is replaced at once; one more.
        assert_eq!(names(&p.delete), ["d-old-down", "a-old"]);
        assert!(p.create_on.is_empty());
        // Once a's old pod is gone, a gets the new one.
        let nodes = [node("a", &[], &[]), node("b", &[], &["b-old"])];
        let p = plan(&nodes, strategy, up);
        assert_eq!(p.create_on, ["a"]);
        assert_eq!(names(&p.delete), ["b-old"], "a is down, one more may go");
    }

    #[test]
    fn surge_starts_the_new_pod_before_the_old_goes() {
        let strategy = Strategy::RollingUpdate {
            max_unavailable: 0,
            max_surge: 1,
        };
        let nodes = [node("a", &[], &["a-old"]), node("b", &[], &["b-old"])];
        let p = plan(&nodes, strategy, up);
        assert_eq!(p.create_on, ["a"]);
        assert!(p.delete.is_empty());
        // a surges with a new pod not yet available: nothing more.
        let nodes = [
            node("a", &["a-new-down"], &["a-old"]),
            node("b", &[], &["b-old"]),
        ];
        let p = plan(&nodes, strategy, up);
        assert!(p.create_on.is_empty() && p.delete.is_empty());
        // Available: the old pod goes.
        let nodes = [
            node("a", &["a-new"], &["a-old"]),
            node("b", &[], &["b-old"]),
        ];
        let p = plan(&nodes, strategy, up);
        assert_eq!(names(&p.delete), ["a-old"]);
    }

    #[test]
    fn on_delete_leaves_old_pods_alone() {
        let nodes = [node("a", &[], &["a-old"]), node("b", &[], &[])];
        let p = plan(&nodes, Strategy::OnDelete, up);
        assert_eq!(p.create_on, ["b"]);
        assert!(p.delete.is_empty());
        let s = counters(&nodes, up, up);
        assert_eq!(s.updated_number_scheduled, None);
        assert_eq!(s.number_available, Some(1));
    }
}
