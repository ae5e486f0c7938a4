//! Filters: can this pod go on this node? Each filter says why not in kube-scheduler's words,
//! and they run in kube-scheduler's order, stopping at the first that fails.

use std::collections::HashMap;

use super::cache::{Cache, NodeInfo};
use super::pod_info::{AffinityTerm, PodInfo};

/// Counts of matching pods per topology domain, for one term or constraint of the pod being
/// scheduled, computed once per decision.
#[derive(Debug, Default)]
pub struct DomainCounts {
    /// Domain value → matching pods.
    pub counts: HashMap<String, i64>,
}

/// What a decision computes once and every node's filters and scores read.
#[derive(Debug, Default)]
pub struct Prepared {
    /// Per required affinity term: pods it selects, per domain.
    pub affinity: Vec<DomainCounts>,
    /// Per required anti-affinity term.
    pub anti_affinity: Vec<DomainCounts>,
    /// Per spread constraint: matching pods per domain (eligible nodes only), and the
    /// smallest count over the domains.
    pub spread: Vec<(DomainCounts, i64)>,
    /// Existing pods' required anti-affinity that the pod would break: (topology key, domain).
    pub existing_anti: Vec<(String, String)>,
    /// Whether no pod matches an affinity term anywhere (the pod may then go where it matches
    /// its own term, as kube-scheduler allows for the first pod of a group).
    pub affinity_self_match: bool,
}

fn count_term(cache: &Cache, term: &AffinityTerm) -> DomainCounts {
    let mut out = DomainCounts::default();
    for node in cache.nodes() {
        let Some(domain) = node.topology(&term.topology_key) else {
            continue;
        };
        let n = node.pods.iter().filter(|p| term.selects(p)).count() as i64;
        if n > 0 {
            *out.counts.entry(domain.to_owned()).or_default() += n;
        }
    }
    out
}

/// Computes what the pod's inter-pod and spread rules need, once.
pub fn prepare(pod: &PodInfo, cache: &Cache) -> Prepared {
    let mut prepared = Prepared {
        affinity: pod.affinity.iter().map(|t| count_term(cache, t)).collect(),
        anti_affinity: pod
            .anti_affinity
            .iter()
            .map(|t| count_term(cache, t))
            .collect(),
        ..Prepared::default()
    };
    prepared.affinity_self_match = prepared.affinity.iter().all(|c| c.counts.is_empty())
        && pod.affinity.iter().all(|t| t.selects(pod));
    for c in &pod.spread {
        let mut counts = DomainCounts::default();
        for node in cache.nodes() {
            if !node_affinity_matches(pod, node) {
                continue;
            }
            let Some(domain) = node.topology(&c.topology_key) else {
                continue;
            };
            let n = node
                .pods
                .iter()
                .filter(|p| p.namespace == pod.namespace && c.selector.matches_labels(&p.labels))
                .count() as i64;
            *counts.counts.entry(domain.to_owned()).or_default() += n;
        }
        let min = counts.counts.values().copied().min().unwrap_or(0);
        prepared.spread.push((counts, min));
    }
    if cache.any_anti_affinity() {
        for node in cache.nodes() {
            for existing in &node.pods {
                for term in &existing.anti_affinity {
                    if term.selects(pod)
                        && let Some(domain) = node.topology(&term.topology_key)
                    {
                        prepared
                            .existing_anti
                            .push((term.topology_key.clone(), domain.to_owned()));
                    }
                }
            }
        }
    }
    prepared
}

/// `nodeSelector` and required node affinity.
pub fn node_affinity_matches(pod: &PodInfo, node: &NodeInfo) -> bool {
    pod.node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v))
        && pod
            .required_nodes
            .as_ref()
            .is_none_or(|s| s.matches(&node.labels, &node.name))
}

/// Why the node does not fit; empty when it does.
pub fn filter(pod: &PodInfo, node: &NodeInfo, prepared: &Prepared) -> Vec<String> {
    // NodeUnschedulable
    if node.unschedulable
        && !pod.tolerations.iter().any(|t| {
            (t.key.is_empty() && t.exists || t.key == "node.kubernetes.io/unschedulable")
                && (t.effect.is_empty() || t.effect == "NoSchedule")
        })
    {
        return vec!["node(s) were unschedulable".into()];
    }
    // TaintToleration
    if let Some(taint) = node
        .taints
        .iter()
        .find(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !pod.tolerates(t))
    {
        return vec![format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or_default()
        )];
    }
    // NodeAffinity
    if !node_affinity_matches(pod, node) {
        return vec!["node(s) didn't match Pod's node affinity/selector".into()];
    }
    // NodePorts
    if pod.host_ports.iter().any(|(proto, ip, port)| {
        node.used_ports.iter().any(|(p, i, n)| {
            p == proto && n == port && (i == ip || i == "0.0.0.0" || ip == "0.0.0.0")
        })
    }) {
        return vec!["node(s) didn't have free ports for the requested pod ports".into()];
    }
    // NodeResourcesFit
    let missing = node
        .allocatable
        .insufficient(&pod.requests, &node.requested);
    if !missing.is_empty() {
        return missing;
    }
    // PodTopologySpread (DoNotSchedule)
    for (c, (counts, min)) in pod.spread.iter().zip(&prepared.spread) {
        if !c.hard {
            continue;
        }
        let Some(domain) = node.topology(&c.topology_key) else {
            return vec![
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into(),
            ];
        };
        let here = counts.counts.get(domain).copied().unwrap_or(0);
        let self_match = i64::from(c.selector.matches_labels(&pod.labels));
        if here + self_match - min > c.max_skew {
            return vec!["node(s) didn't match pod topology spread constraints".into()];
        }
    }
    // InterPodAffinity
    for (term, counts) in pod.affinity.iter().zip(&prepared.affinity) {
        let matched = node
            .topology(&term.topology_key)
            .is_some_and(|d| counts.counts.get(d).is_some_and(|n| *n > 0));
        let first_of_group =
            prepared.affinity_self_match && node.topology(&term.topology_key).is_some();
        if !matched && !first_of_group {
            return vec!["node(s) didn't match pod affinity rules".into()];
        }
    }
    for (term, counts) in pod.anti_affinity.iter().zip(&prepared.anti_affinity) {
        if node
            .topology(&term.topology_key)
            .is_some_and(|d| counts.counts.get(d).is_some_and(|n| *n > 0))
        {
            return vec!["node(s) didn't match pod anti-affinity rules".into()];
        }
    }
    if prepared
        .existing_anti
        .iter()
        .any(|(key, domain)| node.topology(key) == Some(domain.as_str()))
    {
        return vec!["node(s) didn't satisfy existing pods anti-affinity rules".into()];
    }
    Vec::new()
}
