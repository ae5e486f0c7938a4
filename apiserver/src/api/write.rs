//! Changes to an existing object: update (PUT), the three patch types, server-side apply, and
//! the one read-modify-write loop they share with the scale subresource.
//!
//! The loop reads the object, lets the caller make the new one, then: a result equal to what
//! is stored (resourceVersion and managedFields times aside) is a no-op that writes nothing and
//! keeps the resourceVersion, as in Kubernetes; a dry run answers with the result and writes
//! nothing; otherwise the write is conditional on the revision read, and a conflict re-reads
//! and tries again unless the client pinned a resourceVersion itself.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use serde_json::{Value, json};

use super::admission::{FieldValidation, ObjectAt, UpdateHow, has_finalizers};
use super::apply;
use super::request::{body_bytes, content_type, parse_object};
use super::resource::{
    Call, expected_revision, insert_new, manager, read_body, respond_change, respond_object,
};
use super::status::ApiError;
use crate::storage::{Change, ObjectKey, Stored, WriteOp};

/// How many times a change is re-made when the object changed under it.
pub const ATTEMPTS: usize = 5;

/// What the caller made of the stored object.
pub struct Made {
    /// The new object, admitted.
    pub object: Value,
    /// Warnings for the client.
    pub warnings: Vec<String>,
    /// A resourceVersion the client asked for: a precondition, never retried.
    pub pinned: Option<i64>,
}

/// The object as it is now, for the response.
pub struct Written {
    /// The object after the write, or as it would be (a dry run), or as it is (a no-op).
    pub outcome: Outcome,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

/// What a read-modify-write did.
pub enum Outcome {
    /// It wrote: the committed change, with the object's stored JSON text.
    Stored(Arc<Change>),
    /// It wrote nothing (a no-op or a dry run): the object.
    Unwritten(Value),
}

impl Written {
    /// The object after the write.
    pub fn object(&self) -> &Value {
        match &self.outcome {
            Outcome::Stored(change) => &change.object,
            Outcome::Unwritten(object) => object,
        }
    }

    /// Answers with the object and the warnings.
    pub fn respond(&self, call: &Call<'_>, code: StatusCode) -> Response<Body> {
        match &self.outcome {
            Outcome::Stored(change) => respond_change(call, code, change, &self.warnings),
            Outcome::Unwritten(object) => respond_object(call, code, object, &self.warnings),
        }
    }
}

/// Is this a dry run (`dryRun=All` in the query)? Any other value is refused.
pub fn dry_run(call: &Call<'_>) -> Result<bool, ApiError> {
    dry_run_values(call.q("dryRun").into_iter().map(str::to_owned))
}

/// Checks `dryRun` values (query or an options body): only `All` exists.
pub fn dry_run_values(values: impl IntoIterator<Item = String>) -> Result<bool, ApiError> {
    let mut dry = false;
    for value in values {
        match value.as_str() {
            "All" => dry = true,
            "" => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value {other:?}: supported values are \"All\""
                )));
            }
        }
    }
    Ok(dry)
}

/// Equal apart from what a write always changes: the resourceVersion, and the times in
/// managedFields. Compared in place: a copy of each object would cost more than the
/// comparison.
pub fn unchanged(old: &Value, new: &Value) -> bool {
    same_object(old, new, &[], |field, a, b| match field {
        "metadata" => same_object(a, b, &["resourceVersion"], |field, a, b| match field {
            "managedFields" => same_entries(a, b),
            _ => a == b,
        }),
        _ => a == b,
    })
}

/// managedFields entries equal but for their times.
fn same_entries(a: &Value, b: &Value) -> bool {
    match (a.as_array(), b.as_array()) {
        (Some(a), Some(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(a, b)| same_object(a, b, &["time"], |_, a, b| a == b))
        }
        _ => a == b,
    }
}

/// Two values equal as objects with the fields in `skip` left out, each pair of fields equal
/// by `same`; values that are not both objects are compared as they are.
fn same_object(
    a: &Value,
    b: &Value,
    skip: &[&str],
    same: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    same_fields(a, b, skip, same)
}

/// Whether two maps have the same fields, `skip` aside, each pair equal by `same`.
fn same_fields(
    a: &serde_json::Map<String, Value>,
    b: &serde_json::Map<String, Value>,
    skip: &[&str],
    same: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let kept = |m: &'_ serde_json::Map<String, Value>| {
        m.keys().filter(|k| !skip.contains(&k.as_str())).count()
    };
    kept(a) == kept(b)
        && a.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| b.get(k).is_some_and(|w| same(k, v, w)))
}

/// The write that replaces an object: an update, except that an object being deleted whose
/// last finalizer is now gone is deleted for good (unless its kind's own finisher deletes it,
/// as the namespace finisher does).
pub fn replacement(key: ObjectKey, object: Value, expected: Option<i64>) -> WriteOp {
    let deleting = object["metadata"]["deletionTimestamp"].is_string();
    if deleting && !has_finalizers(&object) && !super::namespace::deleted_by_finisher(&key) {
        WriteOp::Delete { key, expected }
    } else {
        WriteOp::Update {
            key,
            object,
            expected,
        }
    }
}

/// Reads the object at `key`, makes the new one, writes it: no-op, dry run and conflict
/// retry as the module says.
pub async fn read_modify_write(
    call: &Call<'_>,
    key: &ObjectKey,
    mut make: impl FnMut(&Stored) -> Result<Made, ApiError>,
) -> Result<Written, ApiError> {
    let dry = dry_run(call)?;
    for attempt in 1..=ATTEMPTS {
        let stored = call
            .state
            .storage
            .get(key)
            .await
            .map_err(|e| call.storage_error(e))?
            .ok_or_else(|| ApiError::not_found(call.kind.group, call.kind.plural, &key.name))?;
        let Made {
            object,
            warnings,
            pinned,
        } = make(&stored)?;
        let pinned = pinned.filter(|rv| *rv != stored.revision);
        if pinned.is_none() && unchanged(&stored.object, &object) {
            return Ok(Written {
                outcome: Outcome::Unwritten(stored.object),
                warnings,
            });
        }
        if dry {
            if let Some(rv) = pinned {
                return Err(call.storage_error(crate::storage::StorageError::Conflict {
                    key: key.clone(),
                    expected: rv,
                    found: stored.revision,
                }));
            }
            return Ok(Written {
                outcome: Outcome::Unwritten(object),
                warnings,
            });
        }
        let op = replacement(key.clone(), object, Some(pinned.unwrap_or(stored.revision)));
        match call.state.storage.write(vec![op]).await {
            Ok(changes) => {
                let outcome = match changes.into_iter().next() {
                    Some(change) => Outcome::Stored(change),
                    None => Outcome::Unwritten(Value::Null),
                };
                return Ok(Written { outcome, warnings });
            }
            Err(crate::storage::StorageError::Conflict { .. })
                if pinned.is_none() && attempt < ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    Err(ApiError::conflict(
        call.kind.group,
        call.kind.plural,
        &key.name,
    ))
}

/// Admission of a replacement of `old`, with the writer's field ownership recorded.
pub fn admit_update(
    call: &Call<'_>,
    name: &str,
    old: &Value,
    object: Value,
    how: UpdateHow,
) -> Result<(Value, Vec<String>), ApiError> {
    let at = ObjectAt {
        namespace: call.path.namespace.as_deref(),
        name,
    };
    let (mut object, warnings) = call
        .state
        .admission
        .update(call.kind, at, old, object, how)?;
    apply::record_update(Some(old), &mut object, &manager(call));
    Ok((object, warnings))
}

/// `PUT` of the object or its `status`.
pub async fn update(
    call: &Call<'_>,
    name: &str,
    body: Body,
    status_only: bool,
) -> Result<Response<Body>, ApiError> {
    let object = read_body(call, body).await?;
    let how = UpdateHow {
        status_only,
        field_validation: FieldValidation::parse(call.q("fieldValidation"))?,
    };
    let pinned = expected_revision(&object)?;
    let written = read_modify_write(call, &call.key(name), |stored| {
        let (object, warnings) = admit_update(call, name, &stored.object, object.clone(), how)?;
        Ok(Made {
            object,
            warnings,
            pinned,
        })
    })
    .await?;
    Ok(written.respond(call, StatusCode::OK))
}

/// Applies a patch of the request's media type to `target`.
pub fn apply_patch(call: &Call<'_>, target: &mut Value, bytes: &[u8]) -> Result<(), ApiError> {
    let media = content_type(&call.headers);
    let invalid = |e: String| {
        ApiError::new(
            422,
            "Invalid",
            format!("the patch could not be applied: {e}"),
        )
    };
    match media.as_str() {
        "application/json-patch+json" => {
            let patch: json_patch::Patch = serde_json::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("the JSON patch is malformed: {e}")))?;
            json_patch::patch(target, &patch).map_err(|e| invalid(e.to_string()))
        }
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            let patch: Value = serde_json::from_slice(bytes)
                .map_err(|e| ApiError::bad_request(format!("the patch is not valid JSON: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            if media == "application/merge-patch+json" {
                json_patch::merge(target, &patch);
            } else {
                let shape = ferry_schema::merge::TypeShape::of_kind(
                    target["apiVersion"].as_str().unwrap_or_default(),
                    target["kind"].as_str().unwrap_or_default(),
                );
                ferry_schema::merge::strategic_merge(target, &patch, shape);
            }
            Ok(())
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// `PATCH` of the object or its `status` (JSON, merge, strategic merge, or apply).
pub async fn patch(
    call: &Call<'_>,
    name: &str,
    body: Body,
    status_only: bool,
) -> Result<Response<Body>, ApiError> {
    let bytes = body_bytes(body).await?;
    if content_type(&call.headers) == "application/apply-patch+yaml" && !status_only {
        return server_side_apply(call, name, &bytes).await;
    }
    let how = UpdateHow {
        status_only,
        field_validation: FieldValidation::parse(call.q("fieldValidation"))?,
    };
    let written = read_modify_write(call, &call.key(name), |stored| {
        let mut patched = stored.object.clone();
        apply_patch(call, &mut patched, &bytes)?;
        // A resourceVersion in the patch is a precondition; without one, retry on conflicts.
        let pinned = expected_revision(&patched)?;
        let (object, warnings) = admit_update(call, name, &stored.object, patched, how)?;
        Ok(Made {
            object,
            warnings,
            pinned,
        })
    })
    .await?;
    Ok(written.respond(call, StatusCode::OK))
}

/// Server-side apply: creates the object or merges the configuration into it, with field
/// ownership and conflicts ([`apply`]).
async fn server_side_apply(
    call: &Call<'_>,
    name: &str,
    bytes: &[u8],
) -> Result<Response<Body>, ApiError> {
    let config = parse_object(bytes, "application/yaml")?;
    let manager = call
        .q("fieldManager")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::bad_request("fieldManager is required for apply patches"))?
        .to_owned();
    if let Some(given) = config["metadata"]["name"].as_str()
        && given != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({given}) does not match the name on the URL ({name})"
        )));
    }
    let force = call.q("force") == Some("true");
    let fv = FieldValidation::parse(call.q("fieldValidation"))?;
    let who = (call.kind.group, call.kind.plural, name);
    let key = call.key(name);
    let exists = call
        .state
        .storage
        .get(&key)
        .await
        .map_err(|e| call.storage_error(e))?
        .is_some();
    if !exists {
        let mut object = apply::apply(None, &config, &manager, force, who)?;
        object["metadata"]["name"] = json!(name);
        let (object, warnings) =
            call.state
                .admission
                .create(call.kind, call.path.namespace.as_deref(), object, fv)?;
        return insert_new(call, object, warnings).await;
    }
    let how = UpdateHow {
        status_only: false,
        field_validation: fv,
    };
    let at = ObjectAt {
        namespace: call.path.namespace.as_deref(),
        name,
    };
    let written = read_modify_write(call, &key, |stored| {
        let object = apply::apply(Some(&stored.object), &config, &manager, force, who)?;
        let (object, warnings) =
            call.state
                .admission
                .update(call.kind, at, &stored.object, object, how)?;
        Ok(Made {
            object,
            warnings,
            pinned: None,
        })
    })
    .await?;
    Ok(written.respond(call, StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_ignores_resource_version_and_managed_field_times() {
        let old = json!({"metadata": {"name": "a", "resourceVersion": "5",
            "managedFields": [{"manager": "kubectl", "time": "2026-01-01T00:00:00Z"}]}, "data": {"k": "v"}});
        let mut new = old.clone();
        new["metadata"]["resourceVersion"] = json!("6");
        new["metadata"]["managedFields"][0]["time"] = json!("2026-02-02T00:00:00Z");
        assert!(unchanged(&old, &new));
        new["data"]["k"] = json!("w");
        assert!(!unchanged(&old, &new));
    }

    #[test]
    fn dry_run_takes_all_and_refuses_the_rest() {
        assert!(dry_run_values(["All".to_owned()]).expect("All"));
        assert!(!dry_run_values(Vec::<String>::new()).expect("none"));
        assert!(dry_run_values(["Some".to_owned()]).is_err());
    }
}
