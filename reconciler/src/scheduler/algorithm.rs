//! One scheduling decision: filter a sample of the nodes (as kube-scheduler does on large
//! clusters), score the feasible ones, pick the best; or explain why none fits.

use std::collections::BTreeMap;

use super::cache::Cache;
use super::filter::{self, Prepared};
use super::pod_info::PodInfo;
use super::score;

/// No node fits: how many nodes there were and why each failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// Nodes considered.
    pub nodes: usize,
    /// Reason → how many nodes gave it.
    pub reasons: BTreeMap<String, usize>,
}

impl std::fmt::Display for FitError {
    /// kube-scheduler's message: `0/5 nodes are available: 2 node(s) had untolerated taint
    /// {dedicated: gpu}, 3 Insufficient cpu.` (reasons sorted as strings, as it sorts them).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = self
            .reasons
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect();
        parts.sort();
        if parts.is_empty() {
            write!(f, "0/{} nodes are available.", self.nodes)
        } else {
            write!(
                f,
                "0/{} nodes are available: {}.",
                self.nodes,
                parts.join(", ")
            )
        }
    }
}

/// The scheduler's per-decision state that carries over: where the next sample starts, and a
/// small generator for ties.
#[derive(Debug)]
pub struct Algorithm {
    next_start: usize,
    seed: u64,
    /// Percentage of nodes to score on large clusters (0: kube-scheduler's adaptive default).
    pub percentage_of_nodes_to_score: u32,
}

impl Default for Algorithm {
    fn default() -> Algorithm {
        Algorithm {
            next_start: 0,
            seed: 0x9e37_79b9_7f4a_7c15,
            percentage_of_nodes_to_score: 0,
        }
    }
}

impl Algorithm {
    fn random(&mut self) -> u64 {
        // xorshift64*: ties between equal nodes are broken at random, as kube-scheduler does.
        self.seed ^= self.seed >> 12;
        self.seed ^= self.seed << 25;
        self.seed ^= self.seed >> 27;
        self.seed.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// How many feasible nodes to find before scoring: all below 100 nodes; then a share that
    /// shrinks with the cluster (50% minus 1% per 125 nodes, at least 5%), at least 100.
    fn feasible_to_find(&self, nodes: usize) -> usize {
        if nodes < 100 {
            return nodes;
        }
        let percentage = if self.percentage_of_nodes_to_score > 0 {
            self.percentage_of_nodes_to_score as usize
        } else {
            50usize.saturating_sub(nodes / 125).max(5)
        };
        (nodes * percentage / 100).max(100)
    }

    /// Picks a node for `pod`, or says why there is none.
    pub fn schedule(&mut self, pod: &PodInfo, cache: &Cache) -> Result<String, FitError> {
        let nodes = cache.nodes();
        let prepared: Prepared = filter::prepare(pod, cache);
        let want = self.feasible_to_find(nodes.len());
        let mut feasible = Vec::with_capacity(want.min(nodes.len()));
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let start = if nodes.is_empty() {
            0
        } else {
            self.next_start % nodes.len()
        };
        let mut looked = 0;
        for i in 0..nodes.len() {
            let node = &nodes[(start + i) % nodes.len()];
            looked += 1;
            let why = filter::filter(pod, node, &prepared);
            if why.is_empty() {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            } else {
                for reason in why {
                    *reasons.entry(reason).or_default() += 1;
                }
            }
        }
        if !nodes.is_empty() {
            self.next_start = (start + looked) % nodes.len();
        }
        if feasible.is_empty() {
            return Err(FitError {
                nodes: nodes.len(),
                reasons,
            });
        }
        if feasible.len() == 1 {
            return Ok(feasible[0].name.clone());
        }
        let raws: Vec<score::Raw> = feasible
            .iter()
            .map(|n| score::raw(pod, n, &prepared, cache))
            .collect();
        let totals = score::total(&raws);
        let best = totals.iter().copied().max().unwrap_or(0);
        let ties: Vec<usize> = (0..totals.len()).filter(|i| totals[*i] == best).collect();
        let pick = ties[(self.random() % ties.len() as u64) as usize];
        Ok(feasible[pick].name.clone())
    }
}
