//! JSON Schema generation for every kind in scope, from the Rust types.
//!
//! The source is the types themselves (k8s-openapi's, and ferry's own), through `schemars`.
//! Their schemas then get the Kubernetes specifics that the types cannot say:
//! - quantities (`100m`, `1Gi`, `0.5`) accept a number or a string matching the quantity grammar;
//! - int-or-string fields accept an integer or a string;
//! - enums where Kubernetes has them (`imagePullPolicy`, Service `type`, ...);
//! - `int32` fields are bounded to 32 bits;
//! - optional fields accept `null` (Kubernetes treats an explicit null as absent);
//! - `apiVersion` and `kind` are pinned to the kind's own;
//! - the strict flavour refuses unknown fields (`additionalProperties: false`).
//!
//! `ferry schema export DIR` writes the result, and a test fails when the checked-in files in
//! `schema/jsonschema/` differ from it. The file layout is kubeconform's, so those files also
//! work with kubeconform's `-schema-location`.

use std::collections::{BTreeMap, BTreeSet};

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::kinds::{KINDS, KindInfo};

/// The Kubernetes version the schemas describe.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// The quantity grammar of `k8s.io/apimachinery/pkg/api/resource`.
pub const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

const QUANTITY_DEF: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
const INT_OR_STRING_DEF: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
const CRD_JSON_DEF: &str = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON";

/// Normal (unknown fields allowed, as the apiserver's `fieldValidation=Ignore`) or strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// Unknown fields are allowed.
    Normal,
    /// Unknown fields are errors.
    Strict,
}

impl Flavour {
    /// The directory kubeconform would look in: `v1.33.0-standalone[-strict]`.
    pub fn directory(self) -> String {
        match self {
            Flavour::Normal => format!("{KUBERNETES_VERSION}-standalone"),
            Flavour::Strict => format!("{KUBERNETES_VERSION}-standalone-strict"),
        }
    }
}

/// A generation error: the enum table names a field no type has.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// An enum rule matched nothing.
    #[error("enum rule for {definition}.{property} matches no field of any kind")]
    UnusedEnumRule {
        /// Definition name.
        definition: &'static str,
        /// Property name.
        property: &'static str,
    },
}

/// Where Kubernetes constrains a string field to a set of values.
/// `(definition, property, values)`; for list fields the values constrain the items.
const ENUMS: &[(&str, &str, &[&str])] = &[
    (
        "io.k8s.api.core.v1.Container",
        "imagePullPolicy",
        &["Always", "IfNotPresent", "Never"],
    ),
    (
        "io.k8s.api.core.v1.Container",
        "terminationMessagePolicy",
        &["FallbackToLogsOnError", "File"],
    ),
    ("io.k8s.api.core.v1.Container", "restartPolicy", &["Always"]),
    (
        "io.k8s.api.core.v1.EphemeralContainer",
        "imagePullPolicy",
        &["Always", "IfNotPresent", "Never"],
    ),
    (
        "io.k8s.api.core.v1.ContainerPort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.core.v1.ServicePort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.core.v1.EndpointPort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointPort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicyPort",
        "protocol",
        &["SCTP", "TCP", "UDP"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "restartPolicy",
        &["Always", "Never", "OnFailure"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "dnsPolicy",
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
    ),
    (
        "io.k8s.api.core.v1.PodSpec",
        "preemptionPolicy",
        &["Never", "PreemptLowerPriority"],
    ),
    (
        "io.k8s.api.core.v1.PodStatus",
        "phase",
        &["Failed", "Pending", "Running", "Succeeded", "Unknown"],
    ),
    (
        "io.k8s.api.core.v1.NamespaceStatus",
        "phase",
        &["Active", "Terminating"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "type",
        &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "sessionAffinity",
        &["ClientIP", "None"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "externalTrafficPolicy",
        &["Cluster", "Local"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "internalTrafficPolicy",
        &["Cluster", "Local"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ipFamilyPolicy",
        &["PreferDualStack", "RequireDualStack", "SingleStack"],
    ),
    (
        "io.k8s.api.core.v1.ServiceSpec",
        "ipFamilies",
        &["IPv4", "IPv6"],
    ),
    (
        "io.k8s.api.core.v1.Toleration",
        "operator",
        &["Equal", "Exists"],
    ),
    (
        "io.k8s.api.core.v1.Toleration",
        "effect",
        &["NoExecute", "NoSchedule", "PreferNoSchedule"],
    ),
    (
        "io.k8s.api.core.v1.Taint",
        "effect",
        &["NoExecute", "NoSchedule", "PreferNoSchedule"],
    ),
    (
        "io.k8s.api.core.v1.NodeSelectorRequirement",
        "operator",
        &["DoesNotExist", "Exists", "Gt", "In", "Lt", "NotIn"],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        "volumeMode",
        &["Block", "Filesystem"],
    ),
    (
        "io.k8s.api.core.v1.PersistentVolumeClaimSpec",
        "accessModes",
        &[
            "ReadOnlyMany",
            "ReadWriteMany",
            "ReadWriteOnce",
            "ReadWriteOncePod",
        ],
    ),
    (
        "io.k8s.api.core.v1.HTTPGetAction",
        "scheme",
        &["HTTP", "HTTPS"],
    ),
    (
        "io.k8s.api.core.v1.VolumeMount",
        "mountPropagation",
        &["Bidirectional", "HostToContainer", "None"],
    ),
    (
        "io.k8s.api.core.v1.HostPathVolumeSource",
        "type",
        &[
            "",
            "BlockDevice",
            "CharDevice",
            "Directory",
            "DirectoryOrCreate",
            "File",
            "FileOrCreate",
            "Socket",
        ],
    ),
    (
        "io.k8s.api.core.v1.SeccompProfile",
        "type",
        &["Localhost", "RuntimeDefault", "Unconfined"],
    ),
    (
        "io.k8s.api.core.v1.AppArmorProfile",
        "type",
        &["Localhost", "RuntimeDefault", "Unconfined"],
    ),
    (
        "io.k8s.api.core.v1.SecurityContext",
        "procMount",
        &["Default", "Unmasked"],
    ),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        "whenUnsatisfiable",
        &["DoNotSchedule", "ScheduleAnyway"],
    ),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        "nodeAffinityPolicy",
        &["Honor", "Ignore"],
    ),
    (
        "io.k8s.api.core.v1.TopologySpreadConstraint",
        "nodeTaintsPolicy",
        &["Honor", "Ignore"],
    ),
    (
        "io.k8s.api.core.v1.ContainerResizePolicy",
        "restartPolicy",
        &["NotRequired", "RestartContainer"],
    ),
    (
        "io.k8s.api.apps.v1.DeploymentStrategy",
        "type",
        &["Recreate", "RollingUpdate"],
    ),
    (
        "io.k8s.api.apps.v1.DaemonSetUpdateStrategy",
        "type",
        &["OnDelete", "RollingUpdate"],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetUpdateStrategy",
        "type",
        &["OnDelete", "RollingUpdate"],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetSpec",
        "podManagementPolicy",
        &["OrderedReady", "Parallel"],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy",
        "whenDeleted",
        &["Delete", "Retain"],
    ),
    (
        "io.k8s.api.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicy",
        "whenScaled",
        &["Delete", "Retain"],
    ),
    (
        "io.k8s.api.batch.v1.CronJobSpec",
        "concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
    ),
    (
        "io.k8s.api.batch.v1.JobSpec",
        "completionMode",
        &["Indexed", "NonIndexed"],
    ),
    (
        "io.k8s.api.batch.v1.JobSpec",
        "podReplacementPolicy",
        &["Failed", "TerminatingOrFailed"],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyRule",
        "action",
        &["Count", "FailIndex", "FailJob", "Ignore"],
    ),
    (
        "io.k8s.api.batch.v1.PodFailurePolicyOnExitCodesRequirement",
        "operator",
        &["In", "NotIn"],
    ),
    (
        "io.k8s.api.networking.v1.HTTPIngressPath",
        "pathType",
        &["Exact", "ImplementationSpecific", "Prefix"],
    ),
    (
        "io.k8s.api.networking.v1.NetworkPolicySpec",
        "policyTypes",
        &["Egress", "Ingress"],
    ),
    (
        "io.k8s.api.discovery.v1.EndpointSlice",
        "addressType",
        &["FQDN", "IPv4", "IPv6"],
    ),
    (
        "io.k8s.api.autoscaling.v2.MetricSpec",
        "type",
        &[
            "ContainerResource",
            "External",
            "Object",
            "Pods",
            "Resource",
        ],
    ),
    (
        "io.k8s.api.autoscaling.v2.MetricTarget",
        "type",
        &["AverageValue", "Utilization", "Value"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HPAScalingRules",
        "selectPolicy",
        &["Disabled", "Max", "Min"],
    ),
    (
        "io.k8s.api.autoscaling.v2.HPAScalingPolicy",
        "type",
        &["Percent", "Pods"],
    ),
    (
        "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
        "unhealthyPodEvictionPolicy",
        &["AlwaysAllow", "IfHealthyBudget"],
    ),
];

/// The schema of one kind, in one flavour, and the enum rules it used.
fn kind_schema_with_usage(kind: &KindInfo, flavour: Flavour) -> (Value, BTreeSet<usize>) {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let schema = (kind.schema)(&mut generator);
    let mut root = schema.to_value();
    let mut used = BTreeSet::new();
    if let Some(Value::Object(defs)) = root.get_mut("$defs") {
        for (name, def) in defs.iter_mut() {
            shape_definition(name, def, &mut used);
        }
    }
    shape_definition(&(kind.definition)(), &mut root, &mut used);
    walk_schemas(&mut root, &mut |s| shape_object(s, flavour));
    if let Some(Value::Object(root)) = Some(&mut root) {
        pin_root(root, kind);
    }
    (root, used)
}

/// The schema of one kind, in one flavour.
pub fn kind_schema(kind: &KindInfo, flavour: Flavour) -> Value {
    kind_schema_with_usage(kind, flavour).0
}

/// Every schema file, as `(relative path, contents)`, in a stable order.
pub fn all_schema_files() -> Result<BTreeMap<String, String>, GenerateError> {
    let mut files = BTreeMap::new();
    let mut used = BTreeSet::new();
    for flavour in [Flavour::Normal, Flavour::Strict] {
        for kind in KINDS {
            let (schema, kind_used) = kind_schema_with_usage(kind, flavour);
            used.extend(kind_used);
            let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            text.push('\n');
            files.insert(
                format!("{}/{}", flavour.directory(), kind.schema_file_name()),
                text,
            );
        }
    }
    if let Some(i) = (0..ENUMS.len()).find(|i| !used.contains(i)) {
        return Err(GenerateError::UnusedEnumRule {
            definition: ENUMS[i].0,
            property: ENUMS[i].1,
        });
    }
    Ok(files)
}

/// Applies the per-definition fixes: quantity, int-or-string, enums.
fn shape_definition(name: &str, def: &mut Value, used: &mut BTreeSet<usize>) {
    let Value::Object(obj) = def else { return };
    match name {
        QUANTITY_DEF => {
            obj.insert("type".into(), json!(["string", "number"]));
            obj.insert("pattern".into(), json!(QUANTITY_PATTERN));
        }
        INT_OR_STRING_DEF => {
            obj.insert("type".into(), json!(["integer", "string"]));
        }
        // A CRD schema's `default`, `enum` and `example` values are any JSON value.
        CRD_JSON_DEF => {
            obj.remove("type");
        }
        _ => {}
    }
    for (i, (definition, property, values)) in ENUMS.iter().enumerate() {
        if *definition != name {
            continue;
        }
        let Some(prop) = obj.get_mut("properties").and_then(|p| p.get_mut(*property)) else {
            continue;
        };
        let target = if prop.get("type").and_then(Value::as_str) == Some("array") {
            prop.get_mut("items")
        } else {
            Some(prop)
        };
        if let Some(Value::Object(target)) = target {
            target.insert("enum".into(), json!(values));
            used.insert(i);
        }
    }
}

/// Visits every schema object in the tree: definitions, properties, items, and so on.
fn walk_schemas(schema: &mut Value, visit: &mut impl FnMut(&mut Map<String, Value>)) {
    let Value::Object(obj) = schema else { return };
    visit(obj);
    for key in ["properties", "$defs", "patternProperties"] {
        if let Some(Value::Object(children)) = obj.get_mut(key) {
            for child in children.values_mut() {
                walk_schemas(child, visit);
            }
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = obj.get_mut(key) {
            walk_schemas(child, visit);
        }
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(Value::Array(children)) = obj.get_mut(key) {
            for child in children {
                walk_schemas(child, visit);
            }
        }
    }
}

/// Per-object fixes: int32 bounds, nullable optional fields, strictness.
fn shape_object(obj: &mut Map<String, Value>, flavour: Flavour) {
    collapse_optional(obj);
    if obj.get("format").and_then(Value::as_str) == Some("int32") {
        obj.insert("minimum".into(), json!(i32::MIN));
        obj.insert("maximum".into(), json!(i32::MAX));
    }
    let required: BTreeSet<String> = obj
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let has_properties = if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for (name, prop) in props.iter_mut() {
            if !required.contains(name) {
                allow_null(prop);
            }
        }
        true
    } else {
        false
    };
    if flavour == Flavour::Strict && has_properties && !obj.contains_key("additionalProperties") {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
}

/// Turns schemars' `anyOf: [T, {type: null}]` for an `Option<T>` into `T` itself: nullability
/// is added uniformly by [`allow_null`], and an `anyOf` would hide the errors inside `T`.
fn collapse_optional(obj: &mut Map<String, Value>) {
    let Some(Value::Array(options)) = obj.get("anyOf") else {
        return;
    };
    let is_null = |v: &Value| v.get("type").and_then(Value::as_str) == Some("null");
    if options.len() != 2 || !options.iter().any(is_null) {
        return;
    }
    let inner = options.iter().find(|v| !is_null(v)).cloned();
    obj.remove("anyOf");
    if let Some(Value::Object(inner)) = inner {
        for (k, v) in inner {
            obj.entry(k).or_insert(v);
        }
    }
}

/// Lets an optional field be written as `null`, where the schema names its type.
fn allow_null(prop: &mut Value) {
    let Some(ty) = prop.get_mut("type") else {
        return;
    };
    match ty {
        Value::String(s) if s != "null" => *ty = json!([s.clone(), "null"]),
        Value::Array(types) if !types.iter().any(|t| t == "null") => types.push(json!("null")),
        _ => {}
    }
}

fn pin_root(root: &mut Map<String, Value>, kind: &KindInfo) {
    if let Some(Value::Object(props)) = root.get_mut("properties") {
        props.insert(
            "apiVersion".into(),
            json!({"description": "APIVersion of this kind.", "type": "string", "enum": [kind.api_version()]}),
        );
        props.insert(
            "kind".into(),
            json!({"description": "The kind.", "type": "string", "enum": [kind.kind]}),
        );
    }
    root.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": kind.group, "kind": kind.kind, "version": kind.version}]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::find;

    fn deployment(flavour: Flavour) -> Value {
        kind_schema(find("apps/v1", "Deployment").expect("in scope"), flavour)
    }

    #[test]
    fn quantity_and_int_or_string() {
        let schema = deployment(Flavour::Normal);
        let q = &schema["$defs"][QUANTITY_DEF];
        assert_eq!(q["type"], json!(["string", "number"]));
        assert_eq!(q["pattern"], json!(QUANTITY_PATTERN));
        assert_eq!(
            schema["$defs"][INT_OR_STRING_DEF]["type"],
            json!(["integer", "string"])
        );
    }

    #[test]
    fn enums_required_nullable_and_strictness() {
        let normal = deployment(Flavour::Normal);
        let container = &normal["$defs"]["io.k8s.api.core.v1.Container"];
        assert_eq!(
            container["properties"]["imagePullPolicy"]["enum"],
            json!(["Always", "IfNotPresent", "Never"])
        );
        assert_eq!(container["required"], json!(["name"]));
        assert_eq!(
            container["properties"]["image"]["type"],
            json!(["string", "null"])
        );
        assert!(container.get("additionalProperties").is_none());
        assert_eq!(normal["properties"]["kind"]["enum"], json!(["Deployment"]));
        let strict = deployment(Flavour::Strict);
        let container = &strict["$defs"]["io.k8s.api.core.v1.Container"];
        assert_eq!(container["additionalProperties"], json!(false));
        // Maps keep their value schema: labels stay open.
        let meta = &strict["$defs"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
        assert_eq!(
            meta["properties"]["labels"]["additionalProperties"]["type"],
            json!("string")
        );
    }

    #[test]
    fn every_enum_rule_is_used() {
        all_schema_files().expect("every enum rule names a real field");
    }
}
