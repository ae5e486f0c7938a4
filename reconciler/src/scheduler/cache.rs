//! The scheduler's view of the cluster: every node with what the pods on it (bound, or assumed
//! by the scheduler and not yet bound) request and use.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1 as core;

use super::pod_info::{PodInfo, PodKey};
use super::resources::Resources;

/// One node and what is placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// The object as far as placement reads it (name, labels, spec, allocatable; see
    /// [`placement_part`]).
    pub node: Arc<core::Node>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its taints.
    pub taints: Vec<core::Taint>,
    /// Cordoned.
    pub unschedulable: bool,
    /// What it offers.
    pub allocatable: Resources,
    /// What the pods on it request.
    pub requested: Resources,
    /// The pods on it.
    pub pods: Vec<Arc<PodInfo>>,
    /// Host ports in use: (protocol, hostIP, port).
    pub used_ports: Vec<(String, String, i32)>,
}

/// What placement reads of a node: its name, labels, spec (taints, cordon) and allocatable.
/// Conditions, addresses, images and the node's info change with heartbeats or not at all for
/// the scheduler, and would be most of 5,000 cached nodes.
pub fn placement_part(node: &core::Node) -> core::Node {
    core::Node {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: node.metadata.name.clone(),
            labels: node.metadata.labels.clone(),
            ..Default::default()
        },
        spec: node.spec.clone(),
        status: node.status.as_ref().map(|s| core::NodeStatus {
            allocatable: s.allocatable.clone(),
            // Capacity stands in for allocatable only where a node reports none.
            capacity: s.capacity.clone().filter(|_| s.allocatable.is_none()),
            ..Default::default()
        }),
    }
}

impl NodeInfo {
    fn new(node: Arc<core::Node>) -> NodeInfo {
        let spec = node.spec.clone().unwrap_or_default();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            taints: spec.taints.unwrap_or_default(),
            unschedulable: spec.unschedulable.unwrap_or(false),
            allocatable: Resources::allocatable(&node),
            requested: Resources::default(),
            pods: Vec::new(),
            used_ports: Vec::new(),
            node,
        }
    }

    pub(super) fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
    }

    pub(super) fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.key == key)?;
        let pod = self.pods.swap_remove(i);
        self.requested.subtract(&pod.requests);
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        Some(pod)
    }

    /// The value of a topology label on this node.
    pub fn topology(&self, key: &str) -> Option<&str> {
        if key == "kubernetes.io/hostname" && !self.labels.contains_key(key) {
            return Some(&self.name);
        }
        self.labels.get(key).map(String::as_str)
    }
}

/// Every node, and where each pod is.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Pod → node, for pods bound or assumed; pods whose node is not known yet wait here.
    placed: HashMap<PodKey, (String, Arc<PodInfo>)>,
    /// Controller owner uid → node → how many of its pods are there (to spread replicas).
    owners: HashMap<String, HashMap<String, u32>>,
    /// The label sets of placed pods, each held once (30,000 replicas carry one set).
    label_sets: HashSet<Arc<BTreeMap<String, String>>>,
    /// How many placed pods have required anti-affinity terms (checked against newcomers).
    with_anti_affinity: usize,
    /// Bumped on every change: a failed pod is retried when it moves.
    generation: u64,
}

impl Cache {
    /// The nodes, in a stable order.
    pub fn nodes(&self) -> &[NodeInfo] {
        &self.nodes
    }

    /// How many distinct label sets the placed pods carry.
    pub fn label_sets(&self) -> usize {
        self.label_sets.len()
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|i| &self.nodes[*i])
    }

    /// How many changes the cache has seen.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds or replaces a node (keeping its pods); only its [`placement_part`] is kept.
    pub fn upsert_node(&mut self, node: Arc<core::Node>) {
        self.generation += 1;
        let mut info = NodeInfo::new(Arc::new(placement_part(&node)));
        match self.index.get(&info.name) {
            Some(i) => {
                let old = &mut self.nodes[*i];
                info.requested = std::mem::take(&mut old.requested);
                info.pods = std::mem::take(&mut old.pods);
                info.used_ports = std::mem::take(&mut old.used_ports);
                *old = info;
            }
            None => {
                let name = info.name.clone();
                // Pods placed on it before it was known.
                for (node, pod) in self.placed.values() {
                    if *node == name {
                        info.add_pod(pod.clone());
                    }
                }
                self.index.insert(name, self.nodes.len());
                self.nodes.push(info);
            }
        }
    }

    /// Removes a node.
    pub fn remove_node(&mut self, name: &str) {
        self.generation += 1;
        let Some(i) = self.index.remove(name) else {
            return;
        };
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    /// Records a pod on a node (bound, or assumed by the scheduler); a pod placed before is
    /// moved (or refreshed).
    pub fn place(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.unplace(&pod.key);
        let labels = match self.label_sets.get(&pod.labels) {
            Some(shared) => shared.clone(),
            None => {
                self.label_sets.insert(pod.labels.clone());
                pod.labels.clone()
            }
        };
        let pod = Arc::new(pod.placed(labels));
        self.generation += 1;
        if let Some(i) = self.index.get(node) {
            self.nodes[*i].add_pod(pod.clone());
        }
        if let Some(owner) = &pod.owner {
            *self
                .owners
                .entry(owner.clone())
                .or_default()
                .entry(node.to_owned())
                .or_default() += 1;
        }
        if !pod.anti_affinity.is_empty() {
            self.with_anti_affinity += 1;
        }
        self.placed.insert(pod.key.clone(), (node.to_owned(), pod));
    }

    /// Forgets a pod (deleted, finished, or an assumption that did not bind).
    pub fn unplace(&mut self, key: &str) -> Option<(String, Arc<PodInfo>)> {
        let (node, pod) = self.placed.remove(key)?;
        self.generation += 1;
        if let Some(i) = self.index.get(&node) {
            self.nodes[*i].remove_pod(key);
        }
        if let Some(owner) = &pod.owner
            && let Some(by_node) = self.owners.get_mut(owner)
        {
            if let Some(n) = by_node.get_mut(&node) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    by_node.remove(&node);
                }
            }
            if by_node.is_empty() {
                self.owners.remove(owner);
            }
        }
        if !pod.anti_affinity.is_empty() {
            self.with_anti_affinity = self.with_anti_affinity.saturating_sub(1);
        }
        // The set and this pod hold the last two references: nobody else carries the labels.
        if self
            .label_sets
            .get(&pod.labels)
            .is_some_and(|l| Arc::strong_count(l) <= 2)
        {
            self.label_sets.remove(&pod.labels);
        }
        Some((node, pod))
    }

    /// How many pods of `owner` are on each node.
    pub fn owner_counts(&self, owner: &str) -> Option<&HashMap<String, u32>> {
        self.owners.get(owner)
    }

    /// Whether any placed pod has required anti-affinity terms.
    pub fn any_anti_affinity(&self) -> bool {
        self.with_anti_affinity > 0
    }

    /// Where a pod is placed.
    pub fn placed_on(&self, key: &str) -> Option<&str> {
        self.placed.get(key).map(|(n, _)| n.as_str())
    }

    /// How many pods are placed.
    pub fn placed_count(&self) -> usize {
        self.placed.len()
    }
}
