//! Scores: of the nodes that fit, which is best? Each score is 0-100 and weighted as in
//! kube-scheduler's default profile: least allocated and balanced allocation (1 each),
//! preferred node affinity and pod affinity (2), topology spread and the spread of one
//! owner's replicas (2), and avoiding `PreferNoSchedule` taints (3).

use super::cache::{Cache, NodeInfo};
use super::filter::Prepared;
use super::pod_info::PodInfo;

const MAX: i64 = 100;

/// The fraction (0-100) of cpu and memory left after placing the pod, averaged.
fn least_allocated(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let part = |alloc: i64, used: i64, want: i64| {
        if alloc <= 0 {
            return 0;
        }
        ((alloc - used - want).max(0) * MAX) / alloc
    };
    let cpu = part(
        node.allocatable.milli_cpu,
        node.requested.milli_cpu,
        pod.requests.milli_cpu,
    );
    let mem = part(
        node.allocatable.memory,
        node.requested.memory,
        pod.requests.memory,
    );
    (cpu + mem) / 2
}

/// How evenly cpu and memory would be used (100: the same fraction of each).
fn balanced(pod: &PodInfo, node: &NodeInfo) -> i64 {
    let fraction = |alloc: i64, used: i64, want: i64| {
        if alloc <= 0 {
            return MAX * 1000;
        }
        (((used + want) * MAX * 1000) / alloc).min(MAX * 1000)
    };
    let cpu = fraction(
        node.allocatable.milli_cpu,
        node.requested.milli_cpu,
        pod.requests.milli_cpu,
    );
    let mem = fraction(
        node.allocatable.memory,
        node.requested.memory,
        pod.requests.memory,
    );
    // Two resources: the standard deviation is half the difference.
    MAX - (cpu - mem).abs() / 2 / 1000
}

/// The raw (unnormalised) scores of the relative plugins, per node.
#[derive(Debug, Default, Clone, Copy)]
pub struct Raw {
    /// Preferred node affinity: sum of matching weights.
    pub node_affinity: i64,
    /// Preferred pod affinity minus anti-affinity: weights times matching pods.
    pub pod_affinity: i64,
    /// Soft spread: matching pods in the node's domains (fewer is better).
    pub spread: i64,
    /// Pods of the same owner on the node (fewer is better).
    pub owner: i64,
    /// Intolerable `PreferNoSchedule` taints (fewer is better).
    pub prefer_no_schedule: i64,
    /// Least allocated plus balanced allocation (already 0-100 each).
    pub resources: i64,
}

/// The raw scores of one node.
pub fn raw(pod: &PodInfo, node: &NodeInfo, prepared: &Prepared, cache: &Cache) -> Raw {
    let node_affinity = pod
        .preferred_nodes
        .iter()
        .filter(|(_, t)| t.matches(&node.labels, &node.name))
        .map(|(w, _)| *w)
        .sum();
    let mut pod_affinity = 0;
    for term in &pod.preferred_affinity {
        let Some(domain) = node.topology(&term.topology_key) else {
            continue;
        };
        // Matching pods in the same domain: count on this node and its domain peers.
        let n: i64 = cache
            .nodes()
            .iter()
            .filter(|o| o.topology(&term.topology_key) == Some(domain))
            .map(|o| o.pods.iter().filter(|p| term.selects(p)).count() as i64)
            .sum();
        pod_affinity += term.weight * n;
    }
    let spread = pod
        .spread
        .iter()
        .zip(&prepared.spread)
        .filter(|(c, _)| !c.hard)
        .map(|(c, (counts, _))| {
            node.topology(&c.topology_key)
                .and_then(|d| counts.counts.get(d).copied())
                .unwrap_or(0)
        })
        .sum();
    let owner = pod
        .owner
        .as_ref()
        .and_then(|o| cache.owner_counts(o))
        .and_then(|c| c.get(&node.name))
        .map_or(0, |n| i64::from(*n));
    let prefer_no_schedule = node
        .taints
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !pod.tolerates(t))
        .count() as i64;
    Raw {
        node_affinity,
        pod_affinity,
        spread,
        owner,
        prefer_no_schedule,
        resources: least_allocated(pod, node) + balanced(pod, node),
    }
}

/// Scales `value` within `[min, max]` to 0-100 (higher is better unless `reverse`).
fn normalise(value: i64, min: i64, max: i64, reverse: bool) -> i64 {
    if max == min {
        return if reverse { MAX } else { 0 };
    }
    let s = (value - min) * MAX / (max - min);
    if reverse { MAX - s } else { s }
}

/// Final scores from the raw scores of the feasible nodes.
pub fn total(raws: &[Raw]) -> Vec<i64> {
    let range = |f: fn(&Raw) -> i64| {
        let min = raws.iter().map(f).min().unwrap_or(0);
        let max = raws.iter().map(f).max().unwrap_or(0);
        (min, max)
    };
    let na = range(|r| r.node_affinity);
    let pa = range(|r| r.pod_affinity);
    let sp = range(|r| r.spread);
    let ow = range(|r| r.owner);
    let pn = range(|r| r.prefer_no_schedule);
    raws.iter()
        .map(|r| {
            r.resources
                + 2 * normalise(r.node_affinity, na.0, na.1, false)
                + 2 * normalise(r.pod_affinity, pa.0, pa.1, false)
                + 2 * normalise(r.spread, sp.0, sp.1, true)
                + 2 * normalise(r.owner, ow.0, ow.1, true)
                + 3 * normalise(r.prefer_no_schedule, pn.0, pn.1, true)
        })
        .collect()
}
