//! The resources the API serves, derived from `ferry_schema::kinds::KINDS` (the one list of
//! kinds in scope), with what discovery needs to say about each.

use ferry_schema::kinds::{KINDS, KindInfo};

/// Kinds whose `status` is written only through the `status` subresource.
const WITH_STATUS: &[&str] = &[
    "Namespace",
    "Node",
    "Pod",
    "Service",
    "PersistentVolumeClaim",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "CronJob",
    "Ingress",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "ReplicationController",
    "PersistentVolume",
    "ResourceQuota",
    "APIService",
    "CustomResourceDefinition",
    "Source",
];

/// Kinds with a `scale` subresource.
const WITH_SCALE: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "ReplicationController",
];

/// The verbs every resource supports.
pub const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Finds the kind served at `group`/`version`/`resource`.
pub fn find(group: &str, version: &str, resource: &str) -> Option<&'static KindInfo> {
    KINDS
        .iter()
        .find(|k| k.group == group && k.version == version && k.plural == resource)
}

/// Does the kind have a status subresource?
pub fn has_status(kind: &KindInfo) -> bool {
    WITH_STATUS.contains(&kind.kind)
}

/// Does the kind have a scale subresource?
pub fn has_scale(kind: &KindInfo) -> bool {
    WITH_SCALE.contains(&kind.kind)
}

/// The storage key of a kind's resource: `pods`, `apps/deployments`.
pub fn storage_resource(kind: &KindInfo) -> String {
    storage_name(kind.group, kind.plural)
}

/// Where objects of `group`'s resource `plural` are stored: `pods`, `apps/deployments`.
pub fn storage_name(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_owned()
    } else {
        format!("{group}/{plural}")
    }
}

/// The singular resource name: `pod`, `deployment`.
pub fn singular(kind: &KindInfo) -> String {
    kind.kind.to_ascii_lowercase()
}

/// The API groups (besides core) and their versions, in a stable order.
pub fn groups() -> Vec<(&'static str, &'static str)> {
    let mut groups: Vec<(&str, &str)> = Vec::new();
    for k in KINDS {
        if !k.group.is_empty() && !groups.contains(&(k.group, k.version)) {
            groups.push((k.group, k.version));
        }
    }
    groups
}

/// The kinds served in a group version.
pub fn kinds_in<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static KindInfo> + use<'a> {
    KINDS
        .iter()
        .filter(move |k| k.group == group && k.version == version)
}
