//! `just bench scheduler` (algorithm half): the scheduling algorithm alone on 5,000 nodes and
//! 10,000 pods with requests, spread over owners (100 ReplicaSets), then the memory of a cache
//! holding 5,000 nodes and 30,000 pods. Prints JSON on stdout.

#[path = "common/bench_pod.rs"]
mod bench_pod;

use std::sync::Arc;
use std::time::Instant;

use ferry_reconciler::scheduler::algorithm::Algorithm;
use ferry_reconciler::scheduler::cache::Cache;
use ferry_reconciler::scheduler::pod_info::PodInfo;
use serde_json::json;

fn node(i: usize) -> Arc<k8s_openapi::api::core::v1::Node> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": format!("node-{i}"), "labels": {
                "kubernetes.io/hostname": format!("node-{i}"),
                "topology.kubernetes.io/zone": format!("zone-{}", i % 3)}},
            "status": {"allocatable": {"cpu": "32", "memory": "128Gi", "pods": "110"}},
        }))
        .expect("node"),
    )
}

fn pod(i: usize) -> Arc<PodInfo> {
    let p = bench_pod::bench_pod(i);
    Arc::new(PodInfo::of(&serde_json::from_value(p).expect("pod")).expect("info"))
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let nodes = 5000;
    let pods = 10_000;
    let mut cache = Cache::default();
    for i in 0..nodes {
        cache.upsert_node(node(i));
    }
    let infos: Vec<Arc<PodInfo>> = (0..pods).map(pod).collect();
    let mut algorithm = Algorithm::default();
    let started = Instant::now();
    let mut failed = 0;
    for p in &infos {
        match algorithm.schedule(p, &cache) {
            Ok(node) => cache.place(p.clone(), &node),
            Err(_) => failed += 1,
        }
    }
    let took = started.elapsed().as_secs_f64();
    // Spread check: the most and fewest pods on a node.
    let per_node: Vec<usize> = cache.nodes().iter().map(|n| n.pods.len()).collect();
    let max = per_node.iter().copied().max().unwrap_or(0);
    let min = per_node.iter().copied().min().unwrap_or(0);
    // Memory: 30,000 pods on 5,000 nodes in the cache.
    for i in pods..30_000 {
        let p = pod(i);
        match algorithm.schedule(&p, &cache) {
            Ok(node) => cache.place(p, &node),
            Err(_) => failed += 1,
        }
    }
    println!(
        "{}",
        json!({
            "nodes": nodes,
            "pods": pods,
            "decisions_per_s": (pods as f64 / took).round(),
            "seconds": took,
            "unschedulable": failed,
            "pods_per_node_min": min,
            "pods_per_node_max": max,
            "rss_mib_5000_nodes_30000_pods": (rss_mib() * 10.0).round() / 10.0,
            "placed": cache.placed_count(),
        })
    );
}
