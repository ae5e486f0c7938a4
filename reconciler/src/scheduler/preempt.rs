//! Preemption: a pod that fits nowhere may evict lower-priority pods from one node. Per node,
//! every lower-priority pod is taken away; if the pod then fits, the victims are given back
//! from the highest priority down while it still fits. The node chosen has the lowest
//! highest-victim priority, then the fewest victims.

use std::sync::Arc;

use super::cache::Cache;
use super::filter::{self, Prepared};
use super::pod_info::PodInfo;

/// Where a pod can go if these pods leave.
#[derive(Debug, Clone)]
pub struct Preemption {
    /// The node.
    pub node: String,
    /// The pods to evict.
    pub victims: Vec<Arc<PodInfo>>,
}

/// Finds the cheapest preemption for `pod`, if any (never when its policy is `Never`).
pub fn find(pod: &PodInfo, cache: &Cache) -> Option<Preemption> {
    if !pod.may_preempt {
        return None;
    }
    let prepared: Prepared = filter::prepare(pod, cache);
    let mut best: Option<(i32, usize, Preemption)> = None;
    for node in cache.nodes() {
        let mut lower: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if lower.is_empty() {
            continue;
        }
        let mut trial = node.clone();
        for p in &lower {
            trial.remove_pod(&p.key);
        }
        if !filter::filter(pod, &trial, &prepared).is_empty() {
            continue;
        }
        // Give back the most important first while the pod still fits.
        lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
        let mut victims = Vec::new();
        for p in lower {
            trial.add_pod(p.clone());
            if !filter::filter(pod, &trial, &prepared).is_empty() {
                trial.remove_pod(&p.key);
                victims.push(p);
            }
        }
        let top = victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
        let cost = (top, victims.len());
        if best.as_ref().is_none_or(|(t, n, _)| cost < (*t, *n)) {
            best = Some((
                top,
                victims.len(),
                Preemption {
                    node: node.name.clone(),
                    victims,
                },
            ));
        }
    }
    best.map(|(_, _, p)| p)
}
