//! The pod both halves of `just bench scheduler` place (`schedbench` in memory, `podload`
//! through the apiserver): requests of 100m and 128Mi, spread over 100 owners (ReplicaSets
//! `rs-0..99`, which need not exist).

use serde_json::{Value, json};

/// The bench's pod number `i`, as JSON.
pub fn bench_pod(i: usize) -> Value {
    let owner = i % 100;
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i}"), "namespace": "bench",
            "labels": {"app": format!("app-{owner}")},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": format!("rs-{owner}"), "uid": format!("uid-{owner}"), "controller": true}]},
        "spec": {"containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
    })
}
