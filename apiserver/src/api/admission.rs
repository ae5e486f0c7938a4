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
use super::defaults::{carry_allocations, default, has_generation, initial_status, new_pod};
use super::limitrange_registry::LimitRanges;
use super::priority::PriorityClasses;
use super::quota_registry::QuotaLimits;
use super::registry_rules;
use super::status::{ApiError, Cause};
use crate::storage::{Storage, StorageError};

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
    priorities: std::sync::Arc<PriorityClasses>,
    limit_ranges: std::sync::Arc<LimitRanges>,
    quotas: std::sync::Arc<QuotaLimits>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission {
            crds: Default::default(),
            priorities: Default::default(),
            limit_ranges: Default::default(),
            quotas: Default::default(),
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

/// Now, as metadata times are written (`2026-01-01T00:00:00Z`).
pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Whether finalizers hold the object.
pub(crate) fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
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

/// The object's metadata map (made when missing).
pub(crate) fn meta(object: &mut Value) -> &mut Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    match object.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
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
                let value = object.pointer(&f.path).cloned().unwrap_or(Value::Null);
                let (reason, message) = kubernetes_wording(&f.message, &value);
                causes.push(Cause {
                    reason,
                    field,
                    message,
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
        if has_generation(kind) {
            m.insert("generation".into(), json!(1));
        } else {
            m.remove("generation");
        }
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
        if kind.group.is_empty() && kind.kind == "Pod" {
            new_pod(&mut object);
        }
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
        if kind.group.is_empty() && kind.kind == "Namespace" && old["spec"]["finalizers"].is_array()
        {
            // Only the finalize subresource changes a namespace's finalizers.
            object["spec"]["finalizers"] = old["spec"]["finalizers"].clone();
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
        if spec_changed && has_generation(kind) {
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

    /// The PriorityClasses the Priority admission reads.
    pub fn priorities(&self) -> &PriorityClasses {
        &self.priorities
    }

    /// The LimitRanges the LimitRange admission reads.
    pub fn limit_ranges(&self) -> &LimitRanges {
        &self.limit_ranges
    }

    /// What the ResourceQuotas of each namespace limit, which quota admission reads.
    pub fn quotas(&self) -> &QuotaLimits {
        &self.quotas
    }

    /// Loads what admission keeps in memory (the CRDs, the PriorityClasses, the LimitRanges,
    /// the quotas' limits) from `storage`, and follows their changes from now on.
    pub async fn attach(&self, storage: &Storage) -> Result<(), StorageError> {
        self.crds.attach(storage).await?;
        self.priorities.attach(storage).await?;
        self.limit_ranges.attach(storage).await?;
        self.quotas.attach(storage).await
    }

    /// Is the kind's status written through a `status` subresource only?
    fn status_subresource(&self, kind: &KindInfo) -> bool {
        match self.crds.of(kind) {
            Some(custom) => custom.status,
            None => has_status(kind),
        }
    }
}

/// A validator finding in the kube-apiserver's words (`Invalid value: -1: must be greater than
/// or equal to 0`, `Duplicate value: "web"`, `Required value`, `Unsupported value: "x":
/// supported values: "a", "b"`), with its StatusCause reason.
fn kubernetes_wording(message: &str, value: &Value) -> (&'static str, String) {
    if message.starts_with("required field") {
        return ("FieldValueRequired", "Required value".into());
    }
    if let Some(rest) = message.strip_prefix("unsupported value ") {
        let supported = rest
            .split_once(": must be one of ")
            .map(|(_, values)| values.to_owned())
            .unwrap_or_default();
        return (
            "FieldValueNotSupported",
            format!("Unsupported value: {value}: supported values: {supported}"),
        );
    }
    if message.starts_with("duplicate ") {
        return ("FieldValueDuplicate", format!("Duplicate value: {value}"));
    }
    // "must be greater than or equal to 0 (is -1)": the value is said once, up front.
    let text = match message.rfind(" (is ") {
        Some(at) if message.ends_with(')') => &message[..at],
        _ => message,
    };
    (
        "FieldValueInvalid",
        format!("Invalid value: {value}: {text}"),
    )
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
