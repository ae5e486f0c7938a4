//! Admission: what happens to an object between the request body and storage. Identity
//! (`uid`, `creationTimestamp`, `generation`), the checks the path implies (kind, name and
//! namespace agree with the URL), defaulting as Kubernetes does it, the split between the main
//! resource and its `status` subresource, immutable fields, and validation with the same engine
//! as `ferry validate` (422 Invalid with field causes; unknown fields per `fieldValidation`).

use ferry_schema::kinds::KindInfo;
use ferry_schema::validate::{Options, Validator};
use serde_json::{Map, Value, json};

use super::catalog::has_status;
use super::crd::{self, CrdRegistry};
use super::registry_rules;
use super::status::{ApiError, Cause};

/// What to do with unknown fields (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Refuse the request (400).
    Strict,
    /// Accept, with a warning.
    Warn,
    /// Accept silently.
    Ignore,
}

impl FieldValidation {
    /// Parses the query parameter; kubectl's default is Strict, the API's default is Warn.
    pub fn parse(value: Option<&str>) -> Result<FieldValidation, ApiError> {
        match value {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Strict, Warn, Ignore; got {other:?}"
            ))),
        }
    }
}

/// Where the object being updated lives (from the URL).
#[derive(Debug, Clone, Copy)]
pub struct ObjectAt<'a> {
    /// Namespace from the path.
    pub namespace: Option<&'a str>,
    /// Name from the path.
    pub name: &'a str,
}

/// How an update is made.
#[derive(Debug, Clone, Copy)]
pub struct UpdateHow {
    /// Through the `status` subresource: only the status changes.
    pub status_only: bool,
    /// What to do with unknown fields.
    pub field_validation: FieldValidation,
}

/// Validators for admission.
pub struct Admission {
    strict: Validator,
    crds: std::sync::Arc<CrdRegistry>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            crds: Default::default(),
            strict: Validator::new(
                Options {
                    strict: true,
                    ..Options::default()
                },
                Vec::new(),
            ),
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random lowercase alphanumeric string, for `generateName`.
fn suffix(len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes
        .iter()
        .take(len)
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// `/spec/ports/0/port` → `spec.ports[0].port`.
pub fn field_path(pointer: &str) -> String {
    let mut out = String::new();
    for segment in ferry_schema::pointer::segments(pointer) {
        if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// Removes the member a JSON pointer names (an unknown field).
fn remove_pointer(object: &mut Value, pointer: &str) {
    let segments = ferry_schema::pointer::segments(pointer);
    let Some((last, parents)) = segments.split_last() else {
        return;
    };
    let mut at = object;
    for segment in parents {
        at = match at {
            Value::Object(map) => match map.get_mut(segment.as_str()) {
                Some(next) => next,
                None => return,
            },
            Value::Array(items) => {
                match segment.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    Some(next) => next,
                    None => return,
                }
            }
            _ => return,
        };
    }
    if let Value::Object(map) = at {
        map.remove(last.as_str());
    }
}

fn meta(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

fn set_default(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.entry(key.to_owned()).or_insert(value);
    }
}

/// A workload's update strategy, defaulted field by field as Kubernetes does: `type`
/// RollingUpdate, and then each missing `rollingUpdate` field (an empty `strategy: {}`, which
/// protobuf clients always send, gets them all).
fn default_update_strategy(spec: &mut Value, key: &str, rolling: Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, key, json!({}));
    let strategy = &mut spec[key];
    set_default(strategy, "type", json!("RollingUpdate"));
    if strategy["type"] == "RollingUpdate" {
        set_default(strategy, "rollingUpdate", json!({}));
        if let Value::Object(fields) = rolling {
            for (k, v) in fields {
                set_default(&mut strategy["rollingUpdate"], &k, v);
            }
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    set_default(spec, "securityContext", json!({}));
    for list in ["initContainers", "containers"] {
        if let Some(containers) = spec[list].as_array_mut() {
            for c in containers {
                let image = c["image"].as_str().unwrap_or_default().to_owned();
                let tag = image
                    .rsplit('/')
                    .next()
                    .and_then(|last| last.split_once(':'))
                    .map(|(_, t)| t.to_owned());
                let policy = if image.contains('@') || tag.as_deref().is_some_and(|t| t != "latest")
                {
                    "IfNotPresent"
                } else {
                    "Always"
                };
                set_default(c, "imagePullPolicy", json!(policy));
                set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "terminationMessagePolicy", json!("File"));
                if let Some(ports) = c["ports"].as_array_mut() {
                    for p in ports {
                        set_default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// Applies Kubernetes' defaults for the kind.
pub fn default(kind: &KindInfo, object: &mut Value) {
    let had_spec = object.get("spec").is_some();
    default_fields(kind, object);
    // Defaulting reads `spec` through indexing, which makes a null one: not a field the
    // object has (a ConfigMap has no spec).
    if !had_spec
        && object.get("spec").is_some_and(Value::is_null)
        && let Some(map) = object.as_object_mut()
    {
        map.remove("spec");
    }
    // Empty metadata maps and lists are "not set" (Go's omitempty): a merge patch that removes
    // the last annotation leaves none, not `{}`, so the write is a no-op when nothing else
    // changed.
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.retain(|key, value| {
            let empty = value.is_null()
                || value.as_object().is_some_and(Map::is_empty)
                || value.as_array().is_some_and(Vec::is_empty);
            !(empty
                && matches!(
                    key.as_str(),
                    "labels" | "annotations" | "finalizers" | "ownerReferences" | "managedFields"
                ))
        });
    }
}

fn default_fields(kind: &KindInfo, object: &mut Value) {
    if (kind.group, kind.kind) == ("", "Secret") {
        set_default(object, "type", json!("Opaque"));
    }
    registry_rules::normalize(kind, object);
    if (kind.group, kind.kind) == ("", "Namespace")
        && let Some(name) = object["metadata"]["name"].as_str().map(str::to_owned)
    {
        // Every namespace carries its name as a label, for namespace selectors.
        let labels = &mut meta(object).entry("labels").or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
    }
    let spec = &mut object["spec"];
    match (kind.group, kind.kind) {
        ("", "Pod") => default_pod_spec(spec),
        ("apps", "Deployment") => {
            set_default(spec, "replicas", json!(1));
            default_update_strategy(
                spec,
                "strategy",
                json!({"maxSurge": "25%", "maxUnavailable": "25%"}),
            );
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "ReplicaSet") => {
            set_default(spec, "replicas", json!(1));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "DaemonSet") => {
            default_update_strategy(
                spec,
                "updateStrategy",
                json!({"maxUnavailable": 1, "maxSurge": 0}),
            );
            set_default(spec, "revisionHistoryLimit", json!(10));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("apps", "StatefulSet") => {
            set_default(spec, "replicas", json!(1));
            set_default(spec, "podManagementPolicy", json!("OrderedReady"));
            default_update_strategy(spec, "updateStrategy", json!({"partition": 0}));
            set_default(spec, "revisionHistoryLimit", json!(10));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("batch", "Job") => {
            set_default(spec, "parallelism", json!(1));
            set_default(spec, "completions", json!(1));
            set_default(spec, "backoffLimit", json!(6));
            set_default(spec, "completionMode", json!("NonIndexed"));
            set_default(spec, "suspend", json!(false));
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        ("batch", "CronJob") => {
            set_default(spec, "concurrencyPolicy", json!("Allow"));
            set_default(spec, "suspend", json!(false));
            set_default(spec, "successfulJobsHistoryLimit", json!(3));
            set_default(spec, "failedJobsHistoryLimit", json!(1));
            default_pod_spec(&mut spec["jobTemplate"]["spec"]["template"]["spec"]);
        }
        ("", "Service") if spec.is_object() => {
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            if let Some(ports) = spec["ports"].as_array_mut() {
                for p in ports {
                    set_default(p, "protocol", json!("TCP"));
                    // Go's zero values are "not set" (protobuf clients always send them):
                    // `nodePort: 0`, and 0 or "" for the IntOrString `targetPort`.
                    if let Some(map) = p.as_object_mut() {
                        map.retain(|k, v| match k.as_str() {
                            "nodePort" => *v != json!(0),
                            "targetPort" => *v != json!(0) && *v != json!(""),
                            _ => true,
                        });
                    }
                    let port = p["port"].clone();
                    set_default(p, "targetPort", port);
                }
            }
        }
        _ => {}
    }
}

/// An update that leaves out a Service's allocated values keeps them, as Kubernetes does (so
/// `kubectl replace` of a manifest without `clusterIP` works).
fn carry_allocations(old: &Value, new: &mut Value) {
    for field in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
        let missing = new["spec"][field].is_null() || new["spec"][field].as_str() == Some("");
        if missing && !old["spec"][field].is_null() {
            new["spec"][field] = old["spec"][field].clone();
        }
    }
    let old_ports = old["spec"]["ports"].as_array().cloned().unwrap_or_default();
    if let Some(ports) = new["spec"]["ports"].as_array_mut() {
        for port in ports {
            if port["nodePort"].is_null()
                && let Some(before) = old_ports
                    .iter()
                    .find(|p| p["port"] == port["port"] && p["protocol"] == port["protocol"])
                && !before["nodePort"].is_null()
            {
                port["nodePort"] = before["nodePort"].clone();
            }
        }
    }
}

/// Fresh status for a created object whose status is a subresource.
/// The status a new object starts with: Kubernetes' zero values, which include the counters
/// its status must always carry (a DaemonSet's `numberReady`, a PDB's `expectedPods`, ...).
fn initial_status(kind: &KindInfo) -> Value {
    match (kind.group, kind.kind) {
        ("", "Namespace") => json!({"phase": "Active"}),
        ("", "Pod") => json!({"phase": "Pending"}),
        ("apps", "DaemonSet") => json!({
            "currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0,
        }),
        ("apps", "ReplicaSet") => json!({"replicas": 0}),
        ("apps", "StatefulSet") => json!({"replicas": 0, "availableReplicas": 0}),
        ("autoscaling", "HorizontalPodAutoscaler") => json!({"desiredReplicas": 0}),
        ("policy", "PodDisruptionBudget") => json!({
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0,
        }),
        _ => json!({}),
    }
}

/// Fields that may not change once set: `(kind, JSON pointer)`.
const IMMUTABLE: &[(&str, &str)] = &[
    ("Deployment", "/spec/selector"),
    ("ReplicaSet", "/spec/selector"),
    ("DaemonSet", "/spec/selector"),
    ("StatefulSet", "/spec/selector"),
    ("Job", "/spec/selector"),
    ("Job", "/spec/template"),
    ("Service", "/spec/clusterIP"),
];

impl Admission {
    fn check_path_agreement(
        kind: &KindInfo,
        object: &mut Value,
        namespace: Option<&str>,
    ) -> Result<(), ApiError> {
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
        let want = kind.api_version();
        match object["apiVersion"].as_str() {
            Some(v) if v != want => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({want})"
                )));
            }
            Some(_) => {}
            None => object["apiVersion"] = json!(want),
        }
        match object["kind"].as_str() {
            Some(k) if k != kind.kind => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    kind.kind
                )));
            }
            Some(_) => {}
            None => object["kind"] = json!(kind.kind),
        }
        let m = meta(object);
        if kind.namespaced {
            let ns = namespace.unwrap_or("default");
            match m.get("namespace").and_then(Value::as_str) {
                Some(given) if !given.is_empty() && given != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        Ok(())
    }

    /// Validates the object. Unknown fields fail a Strict request; otherwise they are
    /// dropped from the object (as Kubernetes' decoder drops them), with a warning under Warn.
    fn validate(
        &self,
        kind: &KindInfo,
        object: &mut Value,
        fv: FieldValidation,
    ) -> Result<Vec<String>, ApiError> {
        let report = self.strict.check_object(object.clone());
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut causes = registry_rules::check(kind, object);
        let mut unknown = Vec::new();
        let mut unknown_at = Vec::new();
        for f in report.errors {
            let field = field_path(&f.path);
            if f.message.starts_with("unknown field ") {
                unknown.push(format!("unknown field \"{field}\""));
                unknown_at.push(f.path);
            } else {
                let reason = if f.message.starts_with("required field") {
                    "FieldValueRequired"
                } else if f.message.starts_with("unsupported value") {
                    "FieldValueNotSupported"
                } else if f.message.contains("duplicate") {
                    "FieldValueDuplicate"
                } else {
                    "FieldValueInvalid"
                };
                causes.push(Cause {
                    reason,
                    field,
                    message: f.message,
                });
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(kind.group, kind.kind, &name, causes));
        }
        if fv == FieldValidation::Strict && !unknown.is_empty() {
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                unknown.join(", ")
            )));
        }
        for pointer in &unknown_at {
            remove_pointer(object, pointer);
        }
        match fv {
            FieldValidation::Warn => Ok(unknown),
            _ => Ok(Vec::new()),
        }
    }

    /// Prepares a new object: returns it and the warnings to send.
    pub fn create(
        &self,
        kind: &KindInfo,
        namespace: Option<&str>,
        object: Value,
        fv: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        self.create_as(kind, self.crds.of(kind), namespace, object, fv)
    }

    /// [`Admission::create`] of a kind whose CRD is given (a CRD the same transaction
    /// creates is not served yet).
    pub fn create_as(
        &self,
        kind: &KindInfo,
        custom: Option<std::sync::Arc<ferry_schema::structural::CrdVersion>>,
        namespace: Option<&str>,
        mut object: Value,
        fv: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        Self::check_path_agreement(kind, &mut object, namespace)?;
        let m = meta(&mut object);
        if m.get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            match m.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let name = format!("{prefix}{}", suffix(5));
                    m.insert("name".into(), json!(name));
                }
                _ => {
                    return Err(ApiError::invalid(
                        kind.group,
                        kind.kind,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired",
                            field: "metadata.name".into(),
                            message: "name or generateName is required".into(),
                        }],
                    ));
                }
            }
        }
        for server_owned in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            m.remove(server_owned);
        }
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.insert("generation".into(), json!(1));
        if let Some(custom) = custom {
            // The status of a custom resource with a status subresource is written there.
            if custom.status
                && let Some(map) = object.as_object_mut()
            {
                map.remove("status");
            }
            let warnings = crd::admission::validate_resource(&custom, &mut object, fv)?;
            return Ok((object, warnings));
        }
        if has_status(kind)
            && let Some(map) = object.as_object_mut()
        {
            map.insert("status".into(), initial_status(kind));
        }
        default(kind, &mut object);
        let warnings = self.validate(kind, &mut object, fv)?;
        if is_crd(kind) {
            crd::admission::admit_definition(&mut object)?;
        }
        Ok((object, warnings))
    }

    /// Prepares a replacement of `old` (PUT or a patch result). With `how.status_only` (the
    /// status subresource) only the status changes. Returns the new object and warnings.
    pub fn update(
        &self,
        kind: &KindInfo,
        at: ObjectAt<'_>,
        old: &Value,
        mut object: Value,
        how: UpdateHow,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let ObjectAt { namespace, name } = at;
        let UpdateHow {
            status_only,
            field_validation: fv,
        } = how;
        Self::check_path_agreement(kind, &mut object, namespace)?;
        let given = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !given.is_empty() && given != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
        let mut object = if status_only {
            let mut merged = old.clone();
            merged["status"] = object["status"].clone();
            if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                meta(&mut merged).insert("resourceVersion".into(), json!(rv));
            }
            merged
        } else {
            if self.status_subresource(kind) {
                match (old.get("status"), object.as_object_mut()) {
                    (Some(status), Some(map)) => {
                        map.insert("status".into(), status.clone());
                    }
                    (None, Some(map)) => {
                        map.remove("status");
                    }
                    _ => {}
                }
            }
            object
        };
        let old_meta = old["metadata"].as_object().cloned().unwrap_or_default();
        let m = meta(&mut object);
        m.insert("name".into(), json!(name));
        for kept in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(kept) {
                Some(v) => m.insert(kept.into(), v.clone()),
                None => m.remove(kept),
            };
        }
        default(kind, &mut object);
        if kind.group.is_empty() && kind.kind == "Service" {
            carry_allocations(old, &mut object);
        }
        let spec_changed = {
            let strip = |v: &Value| {
                let mut v = v.clone();
                if let Some(map) = v.as_object_mut() {
                    map.remove("metadata");
                    map.remove("status");
                }
                v
            };
            strip(old) != strip(&object)
        };
        if spec_changed {
            let generation = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            meta(&mut object).insert("generation".into(), json!(generation));
        }
        let mut causes = Vec::new();
        for (k, pointer) in IMMUTABLE {
            if *k != kind.kind {
                continue;
            }
            let (before, after) = (old.pointer(pointer), object.pointer(pointer));
            if before.is_some_and(|b| !b.is_null() && b.as_str() != Some("")) && before != after {
                causes.push(Cause {
                    reason: "FieldValueInvalid",
                    field: field_path(pointer),
                    message: "field is immutable".into(),
                });
            }
        }
        causes.extend(registry_rules::check_update(kind, old, &object));
        if !causes.is_empty() {
            return Err(ApiError::invalid(kind.group, kind.kind, name, causes));
        }
        let warnings = match self.crds.of(kind) {
            Some(custom) => crd::admission::validate_resource(&custom, &mut object, fv)?,
            None => self.validate(kind, &mut object, fv)?,
        };
        if is_crd(kind) && !status_only {
            crd::admission::admit_definition(&mut object)?;
        }
        Ok((object, warnings))
    }

    /// The registry of the custom kinds CRDs define.
    pub fn crds(&self) -> &std::sync::Arc<CrdRegistry> {
        &self.crds
    }

    /// Is the kind's status written through a `status` subresource only?
    fn status_subresource(&self, kind: &KindInfo) -> bool {
        match self.crds.of(kind) {
            Some(custom) => custom.status,
            None => has_status(kind),
        }
    }
}

fn is_crd(kind: &KindInfo) -> bool {
    kind.group == "apiextensions.k8s.io" && kind.kind == "CustomResourceDefinition"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths() {
        assert_eq!(field_path("/spec/ports/0/port"), "spec.ports[0].port");
        assert_eq!(
            field_path("/metadata/labels/app.kubernetes.io~1name"),
            "metadata.labels.app.kubernetes.io/name"
        );
    }
}
