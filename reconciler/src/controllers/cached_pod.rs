//! The controllers' own copy of a pod: the fields the workload controllers and node lifecycle
//! read, and nothing else, so that 30,000 cached pods stay small (the cache is shared by every
//! workload controller and node lifecycle, and holds every pod of the cluster).
//!
//! A [`CachedPod`] is read from the same JSON as a `Pod` (the watch and list of `/api/v1/pods`);
//! every other field is skipped while parsing, so it is never allocated. Of what is read, some
//! is dropped once the whole pod is known:
//! - metadata: name, namespace, uid, resourceVersion, generation, creation and deletion
//!   times, labels, ownerReferences and finalizers (no annotations, no managed fields);
//! - spec: the node, tolerations (one shared copy of each distinct list), priority, hostname
//!   and subdomain, an unbound DaemonSet pod's node affinity, and only the containers that have
//!   named ports, with only those ports (the Endpoints controller resolves named target ports);
//! - status: phase and IP; of a running pod, its Ready condition and any condition the kubelet
//!   does not write itself (DisruptionTarget, readiness gates), without message or probe time,
//!   and the container statuses that restarted or ended (the scale-down order counts
//!   restarts); of a finished pod, every condition and container status (a Job's failure
//!   policy reads them).
//!
//! Writes go through `Api<Pod>` as ever; an `Api<CachedPod>` serves patches whose answer
//! is only read back into the cache's shape (adoption and release).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{
    Affinity, ContainerPort, ContainerState, ContainerStateTerminated, ContainerStatus,
    PodCondition, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

/// A pod as the controllers' cache holds it (see the module docs for what is kept).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(from = "WirePod")]
pub struct CachedPod {
    /// The pod's metadata, without annotations and managed fields.
    pub metadata: ObjectMeta,
    /// What the controllers read of the spec.
    pub spec: Option<CachedPodSpec>,
    /// What the controllers read of the status.
    pub status: Option<CachedPodStatus>,
}

/// What the controllers read of a pod's spec.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodSpec {
    /// The node it is bound to.
    pub node_name: Option<String>,
    /// Its tolerations (node lifecycle evicts by them); equal lists share one copy.
    #[serde(default, deserialize_with = "shared_tolerations")]
    pub tolerations: Option<Arc<Vec<Toleration>>>,
    /// Its priority.
    pub priority: Option<i32>,
    /// Only on an unbound DaemonSet pod: the affinity that names its node.
    pub affinity: Option<Box<Affinity>>,
    /// Its hostname (headless Services' DNS records).
    pub hostname: Option<String>,
    /// Its subdomain.
    pub subdomain: Option<String>,
    /// The containers that have named ports.
    #[serde(default)]
    pub containers: Vec<CachedContainer>,
}

/// A container of a cached pod: its name and named ports.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct CachedContainer {
    /// The container's name.
    #[serde(default)]
    pub name: String,
    /// Its named ports.
    pub ports: Option<Vec<ContainerPort>>,
}

/// What the controllers read of a pod's status.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedPodStatus {
    /// Pending, Running, Succeeded, Failed or Unknown.
    pub phase: Option<String>,
    /// The pod's IP.
    #[serde(rename = "podIP")]
    pub pod_ip: Option<String>,
    /// The conditions kept (see the module docs).
    pub conditions: Option<Vec<PodCondition>>,
    /// The container statuses kept (see the module docs).
    pub container_statuses: Option<Vec<ContainerStatus>>,
    /// The init container statuses kept.
    pub init_container_statuses: Option<Vec<ContainerStatus>>,
}

impl kube::Resource for CachedPod {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("Pod")
    }

    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("")
    }

    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("pods")
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
impl CachedPod {
    /// The cached form of a whole pod, as the watch would deliver it.
    pub(crate) fn of(pod: &k8s_openapi::api::core::v1::Pod) -> CachedPod {
        let json = serde_json::to_value(pod).expect("a pod serializes");
        serde_json::from_value(json).expect("a pod reads back as a cached pod")
    }
}

/// A pod as it arrives, before what the controllers do not read is dropped.
#[derive(Deserialize)]
struct WirePod {
    #[serde(default)]
    metadata: WireMeta,
    spec: Option<CachedPodSpec>,
    status: Option<CachedPodStatus>,
}

/// The metadata fields the controllers read.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    finalizers: Option<Vec<String>>,
}

impl From<WirePod> for CachedPod {
    fn from(wire: WirePod) -> CachedPod {
        let m = wire.metadata;
        let metadata = ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            labels: m.labels,
            owner_references: m.owner_references,
            finalizers: m.finalizers,
            ..ObjectMeta::default()
        };
        // A DaemonSet's pod names its node in its affinity until it is bound.
        let daemon = super::owner::controller_of(&metadata).is_some_and(|r| r.kind == "DaemonSet");
        let spec = wire.spec.map(|mut spec| {
            let bound = spec.node_name.as_ref().is_some_and(|n| !n.is_empty());
            if !daemon || bound {
                spec.affinity = None;
            }
            spec.containers = std::mem::take(&mut spec.containers)
                .into_iter()
                .filter_map(named_ports_only)
                .collect();
            spec
        });
        let phase = wire.status.as_ref().and_then(|s| s.phase.as_deref());
        let finished = matches!(phase, Some("Succeeded" | "Failed"));
        let status = wire.status.map(|status| trim_status(status, finished));
        CachedPod {
            metadata,
            spec,
            status,
        }
    }
}

/// The container with only its named ports, if it has any.
fn named_ports_only(c: CachedContainer) -> Option<CachedContainer> {
    let named: Vec<_> = c
        .ports
        .into_iter()
        .flatten()
        .filter(|p| p.name.is_some())
        .collect();
    (!named.is_empty()).then_some(CachedContainer {
        name: c.name,
        ports: Some(named),
    })
}

/// The conditions the kubelet sets on every pod that no controller reads (Ready, which they
/// read, is kept).
const KUBELET_CONDITIONS: &[&str] = &[
    "PodScheduled",
    "Initialized",
    "ContainersReady",
    "PodReadyToStartContainers",
];

fn trim_status(status: CachedPodStatus, finished: bool) -> CachedPodStatus {
    let conditions = status.conditions.map(|all| {
        all.into_iter()
            .filter(|c| finished || !KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .map(|c| PodCondition {
                message: None,
                last_probe_time: None,
                ..c
            })
            .collect::<Vec<_>>()
    });
    let containers = |all: Vec<ContainerStatus>| {
        let kept: Vec<_> = all
            .into_iter()
            .map(trim_container_status)
            .filter(|c| finished || c.restart_count > 0 || c.state.is_some())
            .collect();
        (!kept.is_empty()).then_some(kept)
    };
    CachedPodStatus {
        phase: status.phase,
        pod_ip: status.pod_ip,
        conditions: conditions.filter(|c| !c.is_empty()),
        container_statuses: status.container_statuses.and_then(containers),
        init_container_statuses: status.init_container_statuses.and_then(containers),
    }
}

/// A container's name, restarts, and how it ended if it did (the Job controller's failure
/// policy reads exit codes, its back-off the time).
fn trim_container_status(c: ContainerStatus) -> ContainerStatus {
    ContainerStatus {
        name: c.name,
        restart_count: c.restart_count,
        state: c.state.and_then(|s| s.terminated).map(|t| ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: t.exit_code,
                finished_at: t.finished_at,
                reason: t.reason,
                ..ContainerStateTerminated::default()
            }),
            ..ContainerState::default()
        }),
        ..ContainerStatus::default()
    }
}

/// The most distinct toleration lists shared; past it, a list is kept per pod.
const SHARED_TOLERATION_LISTS: usize = 256;

/// The distinct toleration lists seen so far (most pods carry the two the apiserver adds).
static TOLERATION_LISTS: Mutex<Vec<Arc<Vec<Toleration>>>> = Mutex::new(Vec::new());

/// Reads a toleration list and answers the shared copy of an equal one.
fn shared_tolerations<'de, D>(deserializer: D) -> Result<Option<Arc<Vec<Toleration>>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(list) = Option::<Vec<Toleration>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    Ok(Some(share(list)))
}

fn share(list: Vec<Toleration>) -> Arc<Vec<Toleration>> {
    let Ok(mut lists) = TOLERATION_LISTS.lock() else {
        return Arc::new(list);
    };
    if let Some(same) = lists.iter().find(|l| l.as_slice() == list.as_slice()) {
        return same.clone();
    }
    let list = Arc::new(list);
    if lists.len() < SHARED_TOLERATION_LISTS {
        lists.push(list.clone());
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kubelet_status(phase: &str) -> serde_json::Value {
        let condition = |t: &str| json!({"type": t, "status": "True", "message": "long words"});
        let status = |name: &str, restarts: i32| {
            json!({"name": name, "restartCount": restarts, "ready": true, "image": "busybox:1",
                   "imageID": "sha256:1", "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
        };
        let conditions = [
            "PodScheduled",
            "Initialized",
            "ContainersReady",
            "Ready",
            "DisruptionTarget",
        ]
        .map(condition);
        json!({
            "phase": phase,
            "podIP": "10.0.0.7",
            "hostIP": "127.0.0.1",
            "conditions": conditions,
            "containerStatuses": [status("steady", 0), status("flaky", 2)],
        })
    }

    fn pod(phase: &str) -> CachedPod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "web-1",
                "namespace": "default",
                "generateName": "web-",
                "annotations": {"a": "b"},
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {
                "nodeName": "n1",
                "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                 "effect": "NoExecute", "tolerationSeconds": 300}],
                "affinity": {"nodeAffinity": {}},
                "containers": [
                    {"name": "app", "image": "busybox:1",
                     "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}]},
                    {"name": "sidecar", "ports": [{"containerPort": 7000}]},
                ],
            },
            "status": kubelet_status(phase),
        }))
        .expect("a pod reads as a cached pod")
    }

    #[test]
    fn keeps_what_the_controllers_read() {
        let running = pod("Running");
        assert_eq!(running.metadata.name.as_deref(), Some("web-1"));
        assert_eq!(running.metadata.namespace.as_deref(), Some("default"));
        assert!(running.metadata.annotations.is_none());
        assert!(running.metadata.generate_name.is_none());
        assert!(running.metadata.managed_fields.is_none());
        assert_eq!(
            running.metadata.labels.as_ref().and_then(|l| l.get("app")),
            Some(&"web".to_owned())
        );

        let spec = running.spec.as_ref().expect("spec");
        assert_eq!(spec.node_name.as_deref(), Some("n1"));
        assert!(spec.affinity.is_none(), "only an unbound DaemonSet pod's");
        assert_eq!(spec.containers.len(), 1, "only containers with named ports");
        let ports = spec.containers[0].ports.as_ref().expect("ports");
        assert_eq!(ports.len(), 1);
        assert_eq!(ports[0].name.as_deref(), Some("http"));
        assert_eq!(ports[0].container_port, 8080);

        let status = running.status.as_ref().expect("status");
        let kept: Vec<_> = status
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(kept, ["Ready", "DisruptionTarget"]);
        assert!(
            status
                .conditions
                .iter()
                .flatten()
                .all(|c| c.message.is_none())
        );
        assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.7"));
        let restarted: Vec<_> = status
            .container_statuses
            .iter()
            .flatten()
            .map(|c| (c.name.as_str(), c.restart_count, c.image.as_str()))
            .collect();
        assert_eq!(restarted, [("flaky", 2, "")]);

        let failed = pod("Failed");
        let status = failed.status.as_ref().expect("status");
        assert_eq!(status.conditions.as_ref().map(Vec::len), Some(5));
        assert_eq!(status.container_statuses.as_ref().map(Vec::len), Some(2));
    }

    #[test]
    fn equal_toleration_lists_are_one_copy() {
        let (a, b) = (pod("Running"), pod("Pending"));
        let of = |p: &CachedPod| {
            p.spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .expect("tolerations")
        };
        assert!(Arc::ptr_eq(&of(&a), &of(&b)));
        assert_eq!(of(&a)[0].toleration_seconds, Some(300));
    }

    #[test]
    fn an_unbound_daemonset_pod_keeps_its_affinity() {
        let p: CachedPod = serde_json::from_value(json!({
            "metadata": {"name": "d-1", "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "DaemonSet", "name": "d", "uid": "u1", "controller": true}]},
            "spec": {"containers": [], "affinity": {"nodeAffinity": {}}},
        }))
        .expect("pod");
        assert!(p.spec.and_then(|s| s.affinity).is_some());
    }
}
