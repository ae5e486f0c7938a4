//! Which nodes a DaemonSet runs on, and the pod it makes for one: the template's
//! `nodeSelector` and required node affinity must match the node, and its taints must be
//! tolerated, counting the tolerations Kubernetes adds to every DaemonSet pod (not-ready and
//! unreachable nodes, pressure, cordons; a network-unavailable node for host-network pods).
//! A pod is pinned to its node by node affinity on `metadata.name`, and the scheduler binds
//! it, as Kubernetes does since 1.12.

use ferry_schema::node_selector::NodeSelector;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector as CoreNodeSelector, NodeSelectorRequirement,
    NodeSelectorTerm, PodSpec, Toleration,
};

use crate::controllers::cached_pod::CachedPod;

/// The label naming the ControllerRevision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Whether a DaemonSet with pod spec `spec` should run on `node`, and whether a pod already
/// there may stay (an untolerated NoSchedule taint stops new pods only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// A pod should be there.
    pub should_run: bool,
    /// A pod there may stay.
    pub may_stay: bool,
}

/// The tolerations every DaemonSet pod gets (those it already has are kept).
pub fn with_daemon_tolerations(spec: &mut PodSpec) {
    let mut wanted = vec![
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        wanted.push(("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    let tolerations = spec.tolerations.get_or_insert_default();
    for (key, effect) in wanted {
        let present = tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect));
        if !present {
            tolerations.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                ..Toleration::default()
            });
        }
    }
}

/// Whether `toleration` tolerates a taint with this key, value and effect.
fn tolerates(toleration: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != effect)
    {
        return false;
    }
    let exists = toleration.operator.as_deref() == Some("Exists");
    match toleration.key.as_deref() {
        None | Some("") => exists,
        Some(k) => k == key && (exists || toleration.value.as_deref().unwrap_or_default() == value),
    }
}

/// How a DaemonSet whose pods have `spec` (the daemon tolerations added) fits `node`.
pub fn fit(spec: &PodSpec, selector: Option<&NodeSelector>, node: &Node) -> Fit {
    let no = Fit {
        should_run: false,
        may_stay: false,
    };
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let selected = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v))
        && selector.is_none_or(|s| s.matches(&labels, name))
        && spec
            .node_name
            .as_deref()
            .is_none_or(|n| n.is_empty() || n == name);
    if !selected {
        return no;
    }
    let mut fit = Fit {
        should_run: true,
        may_stay: true,
    };
    let tolerations = spec.tolerations.as_deref().unwrap_or_default();
    for taint in node.spec.iter().flat_map(|s| s.taints.iter().flatten()) {
        let value = taint.value.as_deref().unwrap_or_default();
        let tolerated = tolerations
            .iter()
            .any(|t| tolerates(t, &taint.key, value, &taint.effect));
        match (taint.effect.as_str(), tolerated) {
            ("NoExecute", false) => return no,
            ("NoSchedule", false) => fit.should_run = false,
            _ => {}
        }
    }
    fit
}

/// The required node affinity of the template, read once per reconcile.
pub fn selector_of(
    spec: &PodSpec,
) -> Option<Result<NodeSelector, ferry_schema::selector::SelectorError>> {
    let required = spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?;
    Some(NodeSelector::of(required))
}

/// Pins a pod spec to `node`: its required node affinity becomes `metadata.name In [node]`
/// (the template's own terms were checked against the node already).
pub fn pin(spec: &mut PodSpec, node: &str) {
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(CoreNodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_owned()]),
            }]),
        }],
    });
}

/// The node a DaemonSet pod is for: where it is bound, else where its affinity pins it.
pub fn node_of(pod: &CachedPod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|f| {
            (f.key == "metadata.name" && f.operator == "In")
                .then(|| f.values.as_ref()?.first().cloned())
                .flatten()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// A node with labels and taints (key, effect).
    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        Node {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                labels: Some(labels),
                ..Default::default()
            },
            spec: Some(k8s_openapi::api::core::v1::NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, e)| k8s_openapi::api::core::v1::Taint {
                            key: (*k).into(),
                            effect: (*e).into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn selectors_and_taints_decide_where_daemons_run() {
        let mut spec = PodSpec {
            node_selector: Some([("disk".to_owned(), "ssd".to_owned())].into()),
            ..PodSpec::default()
        };
        with_daemon_tolerations(&mut spec);
        let ssd = node("a", &[("disk", "ssd")], &[]);
        let hdd = node("b", &[("disk", "hdd")], &[]);
        assert!(fit(&spec, None, &ssd).should_run);
        assert!(!fit(&spec, None, &hdd).may_stay);
        // Cordoned and not-ready nodes keep their daemons (tolerated by default).
        let cordoned = node(
            "c",
            &[("disk", "ssd")],
            &[
                ("node.kubernetes.io/unschedulable", "NoSchedule"),
                ("node.kubernetes.io/not-ready", "NoExecute"),
            ],
        );
        assert!(fit(&spec, None, &cordoned).should_run);
        // A dedicated node: no new daemons; an evicting taint: none at all.
        let gpu = node("d", &[("disk", "ssd")], &[("dedicated", "NoSchedule")]);
        assert_eq!(
            fit(&spec, None, &gpu),
            Fit {
                should_run: false,
                may_stay: true
            }
        );
        let evicting = node("e", &[("disk", "ssd")], &[("dedicated", "NoExecute")]);
        assert!(!fit(&spec, None, &evicting).may_stay);
        spec.tolerations.get_or_insert_default().push(Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Toleration::default()
        });
        assert!(fit(&spec, None, &gpu).should_run);
        assert!(fit(&spec, None, &evicting).should_run);
    }

    #[test]
    fn a_pinned_pod_names_its_node() {
        let mut spec = PodSpec::default();
        pin(&mut spec, "node-7");
        let mut pod = k8s_openapi::api::core::v1::Pod {
            spec: Some(spec),
            ..Default::default()
        };
        pod.metadata.owner_references = Some(vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                kind: "DaemonSet".into(),
                controller: Some(true),
                ..Default::default()
            },
        ]);
        assert_eq!(node_of(&CachedPod::of(&pod)).as_deref(), Some("node-7"));
        let selector = selector_of(pod.spec.as_ref().expect("spec"))
            .expect("affinity")
            .expect("valid");
        assert!(selector.matches(&BTreeMap::new(), "node-7"));
        assert!(!selector.matches(&BTreeMap::new(), "node-8"));
    }
}
