//! The kinds ferry serves: their group, version, names, scope, naming rule and Rust type.
//!
//! This table is the one list of kinds in scope. The schema generator, the validator and (later)
//! the apiserver's discovery all read it, so adding a kind is one line here.

use k8s_openapi::api::{
    apps, autoscaling, batch, coordination, core, discovery, networking, policy, rbac, scheduling,
    storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration;
use schemars::{JsonSchema, Schema, SchemaGenerator};

use crate::ferry;
use crate::rules::names::NameRule;

/// One kind in scope.
#[derive(Debug)]
pub struct KindInfo {
    /// API group, empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// The kind, e.g. `Deployment`.
    pub kind: &'static str,
    /// The resource (plural) name, e.g. `deployments`.
    pub plural: &'static str,
    /// Short names kubectl accepts, e.g. `deploy`.
    pub short_names: &'static [&'static str],
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// The rule `metadata.name` must follow.
    pub name_rule: NameRule,
    /// Produces the kind's JSON Schema (with its definitions).
    pub schema: fn(&mut SchemaGenerator) -> Schema,
    /// The OpenAPI definition name of the kind's type, e.g. `io.k8s.api.apps.v1.Deployment`.
    pub definition: fn() -> std::borrow::Cow<'static, str>,
}

impl KindInfo {
    /// `apiVersion` as written in manifests: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// A custom kind (served from a CustomResourceDefinition): its schema lives in the CRD, not
    /// in a Rust type, so [`KindInfo::schema`] gives an empty one and the definition name is
    /// `group.version.Kind` in reverse-domain order as kube-apiserver names them.
    pub fn custom(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        short_names: &'static [&'static str],
        namespaced: bool,
    ) -> KindInfo {
        KindInfo {
            group,
            version,
            kind,
            plural,
            short_names,
            namespaced,
            name_rule: NameRule::Dns1123Subdomain,
            schema: |_| Schema::default(),
            definition: || std::borrow::Cow::Borrowed(""),
        }
    }

    /// The file name kubeconform gives this kind's schema: `deployment-apps-v1.json`.
    pub fn schema_file_name(&self) -> String {
        schema_file_name(self.group, self.version, self.kind)
    }
}

/// kubeconform's schema file name for a kind: `{kind}-{first group segment}-{version}.json`,
/// or `{kind}-{version}.json` for the core group.
pub fn schema_file_name(group: &str, version: &str, kind: &str) -> String {
    let kind = kind.to_ascii_lowercase();
    match group.split('.').next() {
        Some(first) if !first.is_empty() => {
            format!("{kind}-{}-{version}.json", first.to_ascii_lowercase())
        }
        _ => format!("{kind}-{version}.json"),
    }
}

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.root_schema_for::<T>()
}

macro_rules! kind {
    ($group:literal, $version:literal, $kind:literal, $plural:literal, [$($short:literal),*], $namespaced:literal, $rule:expr, $ty:ty) => {
        KindInfo {
            group: $group,
            version: $version,
            kind: $kind,
            plural: $plural,
            short_names: &[$($short),*],
            namespaced: $namespaced,
            name_rule: $rule,
            schema: schema_of::<$ty>,
            definition: <$ty as JsonSchema>::schema_name,
        }
    };
}

use NameRule::{Dns1035Label, Dns1123Label, Dns1123Subdomain, PathSegment, SubdomainMax};

/// Every kind in scope.
pub static KINDS: &[KindInfo] = &[
    kind!(
        "",
        "v1",
        "Namespace",
        "namespaces",
        ["ns"],
        false,
        Dns1123Label,
        core::v1::Namespace
    ),
    kind!(
        "",
        "v1",
        "Node",
        "nodes",
        ["no"],
        false,
        Dns1123Subdomain,
        core::v1::Node
    ),
    kind!(
        "",
        "v1",
        "Pod",
        "pods",
        ["po"],
        true,
        Dns1123Subdomain,
        core::v1::Pod
    ),
    kind!(
        "",
        "v1",
        "Service",
        "services",
        ["svc"],
        true,
        Dns1035Label,
        core::v1::Service
    ),
    kind!(
        "",
        "v1",
        "Endpoints",
        "endpoints",
        ["ep"],
        true,
        Dns1123Subdomain,
        core::v1::Endpoints
    ),
    kind!(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        ["cm"],
        true,
        Dns1123Subdomain,
        core::v1::ConfigMap
    ),
    kind!(
        "",
        "v1",
        "Secret",
        "secrets",
        [],
        true,
        Dns1123Subdomain,
        core::v1::Secret
    ),
    kind!(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        ["sa"],
        true,
        Dns1123Subdomain,
        core::v1::ServiceAccount
    ),
    kind!(
        "",
        "v1",
        "Event",
        "events",
        ["ev"],
        true,
        Dns1123Subdomain,
        core::v1::Event
    ),
    kind!(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        ["pvc"],
        true,
        Dns1123Subdomain,
        core::v1::PersistentVolumeClaim
    ),
    kind!(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        ["deploy"],
        true,
        Dns1123Subdomain,
        apps::v1::Deployment
    ),
    kind!(
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        ["rs"],
        true,
        Dns1123Subdomain,
        apps::v1::ReplicaSet
    ),
    kind!(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        ["ds"],
        true,
        Dns1123Subdomain,
        apps::v1::DaemonSet
    ),
    kind!(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        ["sts"],
        true,
        Dns1123Subdomain,
        apps::v1::StatefulSet
    ),
    kind!(
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        [],
        true,
        Dns1123Subdomain,
        apps::v1::ControllerRevision
    ),
    // A Job's name becomes the value of its pods' `job-name` label, so it must fit in 63.
    kind!(
        "batch",
        "v1",
        "Job",
        "jobs",
        [],
        true,
        SubdomainMax(63),
        batch::v1::Job
    ),
    // A CronJob appends an 11-character suffix to name its Jobs.
    kind!(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        ["cj"],
        true,
        SubdomainMax(52),
        batch::v1::CronJob
    ),
    kind!(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        [],
        true,
        Dns1123Subdomain,
        coordination::v1::Lease
    ),
    kind!(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        [],
        true,
        Dns1123Subdomain,
        discovery::v1::EndpointSlice
    ),
    kind!(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        ["ing"],
        true,
        Dns1123Subdomain,
        networking::v1::Ingress
    ),
    kind!(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        ["netpol"],
        true,
        Dns1123Subdomain,
        networking::v1::NetworkPolicy
    ),
    kind!(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        ["pdb"],
        true,
        Dns1123Subdomain,
        policy::v1::PodDisruptionBudget
    ),
    kind!(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        ["hpa"],
        true,
        Dns1123Subdomain,
        autoscaling::v2::HorizontalPodAutoscaler
    ),
    kind!(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        ["rc"],
        true,
        Dns1123Subdomain,
        core::v1::ReplicationController
    ),
    kind!(
        "",
        "v1",
        "PodTemplate",
        "podtemplates",
        [],
        true,
        Dns1123Subdomain,
        core::v1::PodTemplate
    ),
    kind!(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        ["pv"],
        false,
        Dns1123Subdomain,
        core::v1::PersistentVolume
    ),
    kind!(
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        ["quota"],
        true,
        Dns1123Subdomain,
        core::v1::ResourceQuota
    ),
    kind!(
        "",
        "v1",
        "LimitRange",
        "limitranges",
        ["limits"],
        true,
        Dns1123Subdomain,
        core::v1::LimitRange
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        [],
        true,
        PathSegment,
        rbac::v1::Role
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        [],
        false,
        PathSegment,
        rbac::v1::ClusterRole
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        [],
        true,
        PathSegment,
        rbac::v1::RoleBinding
    ),
    kind!(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        [],
        false,
        PathSegment,
        rbac::v1::ClusterRoleBinding
    ),
    kind!(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        ["pc"],
        false,
        Dns1123Subdomain,
        scheduling::v1::PriorityClass
    ),
    kind!(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        ["sc"],
        false,
        Dns1123Subdomain,
        storage::v1::StorageClass
    ),
    kind!(
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        [],
        false,
        Dns1123Subdomain,
        apiregistration::v1::APIService
    ),
    kind!(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        ["crd", "crds"],
        false,
        Dns1123Subdomain,
        apiextensions::v1::CustomResourceDefinition
    ),
    kind!(
        "ferry.dev",
        "v1",
        "Source",
        "sources",
        [],
        true,
        Dns1123Label,
        ferry::Source
    ),
    kind!(
        "ferry.dev",
        "v1",
        "Revision",
        "revisions",
        ["rev"],
        true,
        Dns1123Subdomain,
        ferry::Revision
    ),
];

/// Looks a kind up by `apiVersion` and `kind`.
pub fn find(api_version: &str, kind: &str) -> Option<&'static KindInfo> {
    let (group, version) = split_api_version(api_version);
    KINDS
        .iter()
        .find(|k| k.kind == kind && k.group == group && k.version == version)
}

/// Splits `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_file_names() {
        let deploy = find("apps/v1", "Deployment").expect("Deployment is in scope");
        assert_eq!(deploy.schema_file_name(), "deployment-apps-v1.json");
        assert_eq!(deploy.api_version(), "apps/v1");
        let svc = find("v1", "Service").expect("Service is in scope");
        assert_eq!(svc.schema_file_name(), "service-v1.json");
        let lease = find("coordination.k8s.io/v1", "Lease").expect("Lease is in scope");
        assert_eq!(lease.schema_file_name(), "lease-coordination-v1.json");
        assert!(find("apps/v1beta1", "Deployment").is_none());
        assert!(find("v1", "Deployment").is_none());
    }

    #[test]
    fn kinds_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for k in KINDS {
            assert!(
                seen.insert((k.group, k.version, k.kind)),
                "{} twice",
                k.kind
            );
        }
    }
}
