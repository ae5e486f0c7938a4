//! Admission of custom resources and of the CRDs themselves: a custom resource is pruned,
//! defaulted and validated by its version's structural schema (unknown fields are dropped, or
//! refused under `fieldValidation=Strict`); a CRD must define a kind that can be served, and
//! is given the status the kube-apiserver gives an accepted one (NamesAccepted, Established).

use ferry_schema::structural::{CrdVersion, served_versions};
use serde_json::{Value, json};

use super::super::admission::{FieldValidation, field_path};
use super::super::status::{ApiError, Cause};

/// Prunes, defaults and validates a custom resource; returns the warnings (dropped fields
/// under Warn).
pub fn validate_resource(
    v: &CrdVersion,
    object: &mut Value,
    fv: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut causes = Vec::new();
    if let Some(problem) = ferry_schema::rules::names::NameRule::Dns1123Subdomain.check(&name) {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "metadata.name".into(),
            message: format!("Invalid value: {name:?}: {problem}"),
        });
    }
    let mut unknown = Vec::new();
    if let Some(schema) = &v.schema {
        for pointer in schema.prune(object) {
            unknown.push(format!("unknown field \"{}\"", field_path(&pointer)));
        }
        schema.default(object);
        for failure in schema.validate(object) {
            causes.push(Cause {
                reason: failure.reason,
                field: field_path(&failure.pointer),
                message: failure.message,
            });
        }
    }
    if !causes.is_empty() {
        return Err(ApiError::invalid(&v.group, &v.kind, &name, causes));
    }
    match fv {
        FieldValidation::Strict if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        FieldValidation::Warn => Ok(unknown),
        _ => Ok(Vec::new()),
    }
}

/// Checks that a CRD defines a kind that can be served, and gives it the status of an
/// accepted, established CRD.
pub fn admit_definition(crd: &mut Value) -> Result<(), ApiError> {
    let name = crd["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let versions = served_versions(crd).map_err(|e| {
        let text = e.to_string();
        let (field, message) = text
            .split_once(": ")
            .map_or((String::new(), text.clone()), |(f, m)| {
                (f.to_owned(), m.to_owned())
            });
        ApiError::invalid(
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
            &name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field,
                message,
            }],
        )
    })?;
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let names = crd["spec"]["names"].clone();
    let mut accepted = names.clone();
    if let Some(map) = accepted.as_object_mut() {
        let kind = names["kind"].as_str().unwrap_or_default();
        map.entry("listKind")
            .or_insert(json!(format!("{kind}List")));
        map.entry("singular")
            .or_insert(json!(kind.to_ascii_lowercase()));
    }
    let stored: Vec<String> = versions
        .iter()
        .filter(|v| v.storage)
        .map(|v| v.version.clone())
        .collect();
    let mut stored_versions: Vec<Value> = crd["status"]["storedVersions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for version in stored {
        if !stored_versions.contains(&json!(version)) {
            stored_versions.push(json!(version));
        }
    }
    crd["status"] = json!({
        "acceptedNames": accepted,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "storedVersions": stored_versions,
    });
    Ok(())
}
