//! A Deployment's ReplicaSets as its revision history: the `pod-template-hash` that names a
//! template, which set is the new one (its template equals the Deployment's, the hash label
//! aside), revision numbers in `deployment.kubernetes.io/revision`, the annotations a new set
//! inherits, and which old sets `revisionHistoryLimit` lets go.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::ResourceExt;

use crate::controllers::owner::controller_ref;

/// The label that ties pods and ReplicaSets to one template.
pub const HASH_LABEL: &str = "pod-template-hash";
/// The revision of a ReplicaSet (and the Deployment's current one).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The Deployment's replicas when it last scaled the set.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when it last scaled the set.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// Annotations of the Deployment a ReplicaSet does not inherit.
const NOT_INHERITED: &[&str] = &[
    REVISION,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision-history",
    "deprecated.deployment.rollback.to",
];

/// The characters Kubernetes' `SafeEncodeString` uses (no vowels, no look-alikes).
const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The hash of a template (and the collision count), as the `pod-template-hash` label: FNV-1a
/// of its JSON, its decimal digits mapped onto the safe alphabet.
pub fn template_hash(template: &PodTemplateSpec, collisions: Option<i32>) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u32::from(*b);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(template).unwrap_or_default());
    if let Some(c) = collisions {
        feed(&c.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|b| char::from(SAFE[usize::from(b) % SAFE.len()]))
        .collect()
}

fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    if let Some(meta) = t.metadata.as_mut()
        && let Some(labels) = meta.labels.as_mut()
    {
        labels.remove(HASH_LABEL);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    t
}

/// Whether two templates are the same, the hash label aside.
pub fn same_template(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// A set's revision (0 when it has none).
pub fn revision_of(meta: &ObjectMeta) -> i64 {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The annotations a set of `d` carries at `revision`, sized for `replicas` and `max`.
pub fn annotations(
    d: &Deployment,
    revision: i64,
    replicas: i32,
    max: i32,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| !NOT_INHERITED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(REVISION.into(), revision.to_string());
    out.insert(DESIRED_REPLICAS.into(), replicas.to_string());
    out.insert(MAX_REPLICAS.into(), max.to_string());
    out
}

/// The new ReplicaSet for `d`'s template, named `<deployment>-<hash>`.
pub fn new_set(d: &Deployment, hash: &str, revision: i64, replicas: i32, max: i32) -> ReplicaSet {
    let spec = d.spec.clone().unwrap_or_default();
    let mut template = spec.template.clone();
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    let labels = meta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(HASH_LABEL.into(), hash.into());
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("{}-{hash}", d.name_any())),
            namespace: d.namespace(),
            labels,
            annotations: Some(annotations(d, revision, replicas, max)),
            owner_references: Some(vec![controller_ref(d)]),
            ..ObjectMeta::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: spec.min_ready_seconds,
            selector,
            template: Some(template),
        }),
        status: None,
    }
}

/// Old sets `revisionHistoryLimit` lets go: those scaled to zero with no pods left, oldest
/// revisions first, beyond the limit.
pub fn expired<'a>(old: &'a [&'a ReplicaSet], limit: i32) -> Vec<&'a ReplicaSet> {
    let mut idle: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|rs| {
            rs.spec.as_ref().and_then(|s| s.replicas) == Some(0)
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let excess = idle.len().saturating_sub(limit.max(0) as usize);
    idle.sort_by_key(|rs| revision_of(&rs.metadata));
    idle.truncate(excess);
    idle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]}
        }))
        .expect("fixture")
    }

    #[test]
    fn hashes_are_stable_distinct_and_safe() {
        let a = template_hash(&template("a:1"), None);
        assert_eq!(a, template_hash(&template("a:1"), None));
        assert_ne!(a, template_hash(&template("a:2"), None));
        assert_ne!(a, template_hash(&template("a:1"), Some(1)));
        assert!(a.bytes().all(|b| SAFE.contains(&b)), "{a}");
    }

    #[test]
    fn the_new_set_carries_the_hash_and_matches_its_template() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u1",
                         "annotations": {"kubernetes.io/change-cause": "v2", REVISION: "3"}},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template("a:1")}
        }))
        .expect("fixture");
        let rs = new_set(&d, "abc", 4, 2, 3);
        assert_eq!(rs.name_any(), "web-abc");
        let spec = rs.spec.as_ref().expect("fixture");
        assert_eq!(
            spec.selector.match_labels.as_ref().expect("fixture")[HASH_LABEL],
            "abc"
        );
        let t = spec.template.as_ref().expect("fixture");
        assert!(same_template(
            t,
            &d.spec.as_ref().expect("fixture").template
        ));
        assert!(!same_template(t, &template("a:2")));
        let a = rs.metadata.annotations.as_ref().expect("fixture");
        assert_eq!(a[REVISION], "4");
        assert_eq!(a["kubernetes.io/change-cause"], "v2");
        assert_eq!(revision_of(&rs.metadata), 4);
    }

    #[test]
    fn history_keeps_the_newest_idle_sets() {
        let set = |rev: i64, replicas: i32| -> ReplicaSet {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": format!("r{rev}"), "annotations": {REVISION: rev.to_string()}},
                "spec": {"replicas": replicas, "selector": {}},
                "status": {"replicas": replicas}
            }))
            .expect("fixture")
        };
        let sets = [set(1, 0), set(3, 0), set(2, 0), set(4, 1)];
        let refs: Vec<&ReplicaSet> = sets.iter().collect();
        let gone: Vec<String> = expired(&refs, 1).iter().map(|r| r.name_any()).collect();
        assert_eq!(gone, ["r1", "r2"]);
    }
}
