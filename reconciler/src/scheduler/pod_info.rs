//! What the scheduler needs of a pod, read once from the object: requests, placement rules,
//! tolerations, ports, spread constraints, owner and priority.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferry_client::events::Involved;
use ferry_schema::node_selector::NodeSelector;
use ferry_schema::selector::{LabelSelector, SelectorError};
use k8s_openapi::api::core::v1 as core;

use super::resources::Resources;

/// A pod's key: `namespace/name`.
pub type PodKey = String;

/// The key of a pod object.
pub fn key_of(pod: &core::Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// One inter-pod (anti-)affinity term.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    /// Which pods it is about.
    pub selector: LabelSelector,
    /// In which namespaces (empty: the pod's own).
    pub namespaces: Vec<String>,
    /// The node label that defines "the same place".
    pub topology_key: String,
    /// For preferred terms: the weight (1-100); 0 for required ones.
    pub weight: i64,
}

impl AffinityTerm {
    fn of(
        term: &core::PodAffinityTerm,
        own_namespace: &str,
        weight: i64,
    ) -> Result<AffinityTerm, SelectorError> {
        let selector = match &term.label_selector {
            Some(s) => LabelSelector::from_typed(s)?,
            // No selector selects no pods.
            None => LabelSelector::parse("ferry.dev/none-selected,!ferry.dev/none-selected")?,
        };
        let mut namespaces = term.namespaces.clone().unwrap_or_default();
        if namespaces.is_empty() && term.namespace_selector.is_none() {
            namespaces.push(own_namespace.to_owned());
        }
        Ok(AffinityTerm {
            selector,
            namespaces,
            topology_key: term.topology_key.clone(),
            weight,
        })
    }

    /// Whether this term is about `pod` (by namespace and labels).
    pub fn selects(&self, pod: &PodInfo) -> bool {
        (self.namespaces.is_empty() || self.namespaces.contains(&pod.namespace))
            && self.selector.matches_labels(&pod.labels)
    }
}

/// One topology spread constraint.
#[derive(Debug, Clone)]
pub struct SpreadConstraint {
    /// The allowed difference between the fullest and the emptiest domain.
    pub max_skew: i64,
    /// The node label whose values are the domains.
    pub topology_key: String,
    /// `DoNotSchedule` (a filter) or `ScheduleAnyway` (a score).
    pub hard: bool,
    /// Which pods count.
    pub selector: LabelSelector,
}

/// A toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// Empty with `Exists`: every key.
    pub key: String,
    /// `Exists` or `Equal`.
    pub exists: bool,
    /// The value for `Equal`.
    pub value: String,
    /// Empty: every effect.
    pub effect: String,
}

impl Toleration {
    /// Whether it tolerates a taint.
    pub fn tolerates(&self, taint: &core::Taint) -> bool {
        if !self.effect.is_empty() && self.effect != taint.effect {
            return false;
        }
        if self.key.is_empty() {
            return self.exists;
        }
        self.key == taint.key
            && (self.exists || self.value == taint.value.as_deref().unwrap_or_default())
    }
}

/// What the scheduler reads of a pod, read once from the object, which is not kept (30,000
/// pod objects would be most of the scheduler's memory).
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// `namespace/name`.
    pub key: PodKey,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// uid (the binding's precondition).
    pub uid: String,
    /// Labels (shared by the placed pods that carry the same ones: a ReplicaSet's pods).
    pub labels: Arc<BTreeMap<String, String>>,
    /// `spec.priority`.
    pub priority: i32,
    /// `spec.preemptionPolicy` is not `Never`.
    pub may_preempt: bool,
    /// Creation time (RFC 3339), for the queue's order.
    pub created: String,
    /// What it requests.
    pub requests: Resources,
    /// `spec.nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// Required node affinity.
    pub required_nodes: Option<NodeSelector>,
    /// Preferred node affinity: (weight, term).
    pub preferred_nodes: Vec<(i64, ferry_schema::node_selector::NodeSelectorTerm)>,
    /// Required pod affinity terms.
    pub affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms (weights > 0) and anti-affinity ones (weights < 0).
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Tolerations.
    pub tolerations: Vec<Toleration>,
    /// Host ports: (protocol, hostIP, port).
    pub host_ports: Vec<(String, String, i32)>,
    /// Topology spread constraints.
    pub spread: Vec<SpreadConstraint>,
    /// The controller owner's uid (a ReplicaSet's, a StatefulSet's), for spreading replicas.
    pub owner: Option<String>,
    /// The message of the pod's `PodScheduled=False` (reason Unschedulable) condition when it
    /// was read, so that the same verdict is not written twice.
    pub unschedulable: Option<String>,
}

/// A pod whose placement rules cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("pod {pod}: {error}")]
pub struct PodInfoError {
    /// The pod.
    pub pod: PodKey,
    /// What is wrong.
    pub error: SelectorError,
}

impl PodInfo {
    /// Reads a pod.
    pub fn of(pod: &core::Pod) -> Result<PodInfo, PodInfoError> {
        let key = key_of(pod);
        let fail = |error| PodInfoError {
            pod: key.clone(),
            error,
        };
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let empty = core::PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&empty);
        let affinity = spec.affinity.clone().unwrap_or_default();
        let node_affinity = affinity.node_affinity.unwrap_or_default();
        let required_nodes = node_affinity
            .required_during_scheduling_ignored_during_execution
            .as_ref()
            .map(NodeSelector::of)
            .transpose()
            .map_err(fail)?;
        let preferred_nodes = node_affinity
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .map(|p| {
                ferry_schema::node_selector::NodeSelectorTerm::of(&p.preference)
                    .map(|t| (i64::from(p.weight), t))
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        let pod_affinity = affinity.pod_affinity.unwrap_or_default();
        let pod_anti = affinity.pod_anti_affinity.unwrap_or_default();
        let required = |terms: &Option<Vec<core::PodAffinityTerm>>| {
            terms
                .iter()
                .flatten()
                .map(|t| AffinityTerm::of(t, &namespace, 0))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut preferred_affinity = Vec::new();
        for (terms, sign) in [
            (
                &pod_affinity.preferred_during_scheduling_ignored_during_execution,
                1,
            ),
            (
                &pod_anti.preferred_during_scheduling_ignored_during_execution,
                -1,
            ),
        ] {
            for t in terms.iter().flatten() {
                preferred_affinity.push(
                    AffinityTerm::of(&t.pod_affinity_term, &namespace, sign * i64::from(t.weight))
                        .map_err(fail)?,
                );
            }
        }
        let tolerations = spec
            .tolerations
            .iter()
            .flatten()
            .map(|t| Toleration {
                key: t.key.clone().unwrap_or_default(),
                exists: t.operator.as_deref() == Some("Exists"),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.clone().unwrap_or_default(),
            })
            .collect();
        let host_ports = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let port = p.host_port.filter(|p| *p > 0)?;
                Some((
                    p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    p.host_ip.clone().unwrap_or_else(|| "0.0.0.0".into()),
                    port,
                ))
            })
            .collect();
        let labels = Arc::new(pod.metadata.labels.clone().unwrap_or_default());
        let spread = spec
            .topology_spread_constraints
            .iter()
            .flatten()
            .map(|c| {
                let selector = match &c.label_selector {
                    Some(s) => LabelSelector::from_typed(s)?,
                    None => {
                        LabelSelector::parse("ferry.dev/none-selected,!ferry.dev/none-selected")?
                    }
                };
                Ok(SpreadConstraint {
                    max_skew: i64::from(c.max_skew.max(1)),
                    topology_key: c.topology_key.clone(),
                    hard: c.when_unsatisfiable != "ScheduleAnyway",
                    selector,
                })
            })
            .collect::<Result<Vec<_>, SelectorError>>()
            .map_err(fail)?;
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        Ok(PodInfo {
            namespace: namespace.clone(),
            priority: spec.priority.unwrap_or(0),
            may_preempt: spec.preemption_policy.as_deref() != Some("Never"),
            created: pod
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .unwrap_or_default(),
            requests: Resources::requested_by(pod),
            node_selector: spec.node_selector.clone().unwrap_or_default(),
            required_nodes,
            preferred_nodes,
            affinity: required(&pod_affinity.required_during_scheduling_ignored_during_execution)
                .map_err(fail)?,
            anti_affinity: required(&pod_anti.required_during_scheduling_ignored_during_execution)
                .map_err(fail)?,
            preferred_affinity,
            tolerations,
            host_ports,
            spread,
            owner,
            labels,
            key,
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            unschedulable: unschedulable_message(pod),
        })
    }

    /// What the cache keeps of a placed pod: what newcomers are checked and scored against
    /// (labels, requests, owner, priority, host ports, pod (anti-)affinity), not what only
    /// its own placement read (tolerations, node selection, spread).
    pub fn placed(&self, labels: Arc<BTreeMap<String, String>>) -> PodInfo {
        PodInfo {
            key: self.key.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            labels,
            priority: self.priority,
            may_preempt: self.may_preempt,
            created: String::new(),
            requests: self.requests.clone(),
            node_selector: BTreeMap::new(),
            required_nodes: None,
            preferred_nodes: Vec::new(),
            affinity: self.affinity.clone(),
            anti_affinity: self.anti_affinity.clone(),
            preferred_affinity: self.preferred_affinity.clone(),
            tolerations: Vec::new(),
            host_ports: self.host_ports.clone(),
            spread: Vec::new(),
            owner: self.owner.clone(),
            unschedulable: None,
        }
    }

    /// The pod as the subject of an Event.
    pub fn involved(&self) -> Involved {
        Involved {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
        }
    }

    /// Whether the pod tolerates a taint.
    pub fn tolerates(&self, taint: &core::Taint) -> bool {
        self.tolerations.iter().any(|t| t.tolerates(taint))
    }
}

/// The message of a pod's `PodScheduled=False` condition with reason Unschedulable.
fn unschedulable_message(pod: &core::Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("Unschedulable"))?
        .message
        .clone()
}
