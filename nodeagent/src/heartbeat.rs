//! Lease heartbeats: every node of the process renews its Lease in `kube-node-lease` every
//! 10 s (as the kubelet does), in one loop; node lifecycle reads the renew times.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// The kubelet's renew interval.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// The namespace of node Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

fn micro_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Renews (or creates) one node's Lease. The Lease is owned by the Node, as the kubelet sets it.
pub async fn renew(api: &Api<Lease>, node: &str, node_uid: &str) -> Result<(), kube::Error> {
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node, "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}]},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": micro_now()},
    });
    api.patch(
        node,
        &PatchParams::apply("ferry-node").force(),
        &Patch::Apply(&lease),
    )
    .await
    .map(drop)
}

/// Renews every node's Lease each `every` until `cancel` fires: `nodes` is (name, uid).
pub async fn run(
    client: kube::Client,
    nodes: Vec<(String, String)>,
    every: Duration,
    cancel: CancellationToken,
) {
    let api: Api<Lease> = Api::namespaced(client, NODE_LEASE_NAMESPACE);
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let started = std::time::Instant::now();
        let mut failed = 0usize;
        // At most 32 renewals in flight: 5,000 hollow nodes renew in well under the interval.
        let results = futures::future::join_all(nodes.chunks(32).map(|chunk| {
            let api = api.clone();
            async move {
                let mut failed = 0usize;
                for (name, uid) in chunk {
                    if let Err(e) = renew(&api, name, uid).await {
                        tracing::warn!(node = %name, error = %e, "the node's lease could not be renewed");
                        failed += 1;
                    }
                }
                failed
            }
        }))
        .await;
        failed += results.into_iter().sum::<usize>();
        tracing::debug!(
            nodes = nodes.len(),
            failed,
            took_ms = started.elapsed().as_millis() as u64,
            "leases renewed"
        );
    }
}
