//! The Node object a node agent registers: capacity and allocatable, the well-known labels,
//! addresses, pod CIDR, taints, and the conditions the kubelet reports.

use serde_json::{Value, json};

use crate::config::NodeConfig;

/// The architecture label's value for this build (`amd64`, `arm64`).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The four conditions the kubelet reports, all healthy.
pub fn healthy_conditions(heartbeat: &str) -> Value {
    let c = |type_: &str, status: &str, reason: &str, message: &str| {
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat})
    };
    json!([
        c(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        c(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        c(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        c(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status"
        ),
    ])
}

/// The Node object (metadata and spec) to create.
pub fn node_object(config: &NodeConfig) -> Value {
    let mut labels = json!({
        "kubernetes.io/hostname": config.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": arch(),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": arch(),
    });
    for (k, v) in &config.labels {
        labels[k] = json!(v);
    }
    let mut spec = json!({"podCIDR": config.pod_cidr, "podCIDRs": [config.pod_cidr]});
    if !config.taints.is_empty() {
        spec["taints"] = json!(config.taints);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": config.name, "labels": labels},
        "spec": spec,
    })
}

/// The Node's status: capacity, allocatable, conditions, addresses and node info.
pub fn node_status(config: &NodeConfig, runtime: &str) -> Value {
    let stamp = now();
    json!({
        "capacity": config.capacity,
        "allocatable": config.capacity,
        "conditions": healthy_conditions(&stamp),
        "addresses": [
            {"type": "InternalIP", "address": config.address},
            {"type": "Hostname", "address": config.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.kubelet_port}},
        "nodeInfo": {
            "machineID": "", "systemUUID": "", "bootID": "",
            "kernelVersion": "", "osImage": "ferry",
            "containerRuntimeVersion": format!("{runtime}://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": format!("v1.33.0-ferry.{}", env!("CARGO_PKG_VERSION")),
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": arch(),
        },
    })
}
