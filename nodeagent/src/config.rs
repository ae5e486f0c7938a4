//! A node as `ferry node` describes it: name, labels, taints, capacity; parsed from the flags'
//! text forms with errors that name the flag and the bad part.

use std::collections::BTreeMap;

use ferry_schema::quantity::Quantity;
use k8s_openapi::api::core::v1 as core;

/// A flag that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--labels`: not `key=value`.
    #[error("--labels: {0:?} is not key=value")]
    Label(String),
    /// `--taints`: not `key[=value]:Effect` with a known effect.
    #[error("--taints: {0:?} is not key[=value]:NoSchedule|PreferNoSchedule|NoExecute")]
    Taint(String),
    /// `--capacity`: not `resource=quantity`.
    #[error("--capacity: {0:?} is not resource=quantity (cpu=4,memory=8Gi,pods=110)")]
    Capacity(String),
}

/// What the node offers, as Kubernetes quantities.
pub type ResourceList = BTreeMap<String, String>;

/// One node's description.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    /// Node name.
    pub name: String,
    /// Labels besides the well-known ones (`kubernetes.io/hostname`, `os`, `arch`).
    pub labels: BTreeMap<String, String>,
    /// Taints it registers with.
    pub taints: Vec<core::Taint>,
    /// Capacity (allocatable is the same: ferry reserves nothing yet).
    pub capacity: ResourceList,
    /// Its pod CIDR (`10.244.N.0/24`).
    pub pod_cidr: String,
    /// Its address.
    pub address: String,
    /// The port of its kubelet endpoint (logs), as the Node reports it.
    pub kubelet_port: u16,
}

/// Parses `k=v,k2=v2`.
pub fn parse_labels(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| ConfigError::Label(part.to_owned()))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// Parses `key=value:Effect,key:Effect`.
pub fn parse_taints(text: &str) -> Result<Vec<core::Taint>, ConfigError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ConfigError::Taint(part.to_owned());
        let (kv, effect) = part.rsplit_once(':').ok_or_else(bad)?;
        if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
            return Err(bad());
        }
        let (key, value) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v.to_owned())),
            None => (kv, None),
        };
        if key.is_empty() {
            return Err(bad());
        }
        out.push(core::Taint {
            key: key.to_owned(),
            value,
            effect: effect.to_owned(),
            time_added: None,
        });
    }
    Ok(out)
}

/// Parses `cpu=4,memory=8Gi,pods=110` over `defaults`.
pub fn parse_capacity(text: &str, defaults: ResourceList) -> Result<ResourceList, ConfigError> {
    let mut out = defaults;
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ConfigError::Capacity(part.to_owned());
        let (k, v) = part.split_once('=').ok_or_else(bad)?;
        let q = Quantity::parse(v).map_err(|_| bad())?;
        if k.is_empty() || q.milli_value() < 0 {
            return Err(bad());
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

/// The nodes of one process: `name` alone, or `name-0` .. `name-{count-1}`; each with its own
/// pod CIDR (`10.128.0.0/24`, `10.128.1.0/24`, ...).
pub fn nodes(
    name: &str,
    count: usize,
    labels: &BTreeMap<String, String>,
    taints: &[core::Taint],
    capacity: &ResourceList,
) -> Vec<NodeConfig> {
    (0..count.max(1))
        .map(|i| NodeConfig {
            name: if count <= 1 {
                name.to_owned()
            } else {
                format!("{name}-{i}")
            },
            labels: labels.clone(),
            taints: taints.to_vec(),
            capacity: capacity.clone(),
            pod_cidr: format!("10.{}.{}.0/24", 128 + i / 256, i % 256),
            address: "127.0.0.1".to_owned(),
            kubelet_port: 10250,
        })
        .collect()
}

/// A hollow node's default capacity: what `kubectl describe node` shows for a modest machine.
pub fn sim_capacity() -> ResourceList {
    [
        ("cpu", "4"),
        ("memory", "8Gi"),
        ("pods", "110"),
        ("ephemeral-storage", "100Gi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_and_bad_parts_are_named() {
        assert_eq!(
            parse_labels("zone=a, disk=ssd").expect("labels")["disk"],
            "ssd"
        );
        assert_eq!(parse_labels("zone"), Err(ConfigError::Label("zone".into())));
        let taints =
            parse_taints("dedicated=gpu:NoSchedule,spot:PreferNoSchedule").expect("taints");
        assert_eq!(taints[0].value.as_deref(), Some("gpu"));
        assert_eq!(taints[1].key, "spot");
        assert!(parse_taints("x=y:Sometimes").is_err());
        assert!(parse_taints("x=y").is_err());
        let cap = parse_capacity("cpu=8,nvidia.com/gpu=2", sim_capacity()).expect("capacity");
        assert_eq!(cap["cpu"], "8");
        assert_eq!(cap["nvidia.com/gpu"], "2");
        assert_eq!(cap["pods"], "110");
        let err = parse_capacity("cpu=lots", sim_capacity()).expect_err("bad");
        assert!(err.to_string().contains("cpu=lots"), "{err}");
    }
}
