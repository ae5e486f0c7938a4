//! `POST pods/{name}/eviction` (policy/v1 Eviction), what `kubectl drain` sends: the pod is
//! deleted unless a PodDisruptionBudget selecting it has no disruption left, which answers
//! 429 as Kubernetes does (kubectl then retries). An allowed eviction spends one disruption:
//! the budget's `disruptionsAllowed` goes down and the pod is listed in `disruptedPods`, in
//! the same transaction as the pod's deletion, guarded by both objects' revisions.

use axum::body::Body;
use axum::http::{Response, StatusCode};
use ferry_schema::kinds::KINDS;
use ferry_schema::selector::LabelSelector;
use serde_json::json;

use super::admission::now;
use super::catalog::storage_resource;
use super::request::json_response;
use super::resource::{Call, deletion_ops, read_body};
use super::status::ApiError;
use crate::storage::{ObjectKey, StorageError, Stored, WriteOp};

/// Attempts before a budget that keeps changing is reported as a conflict.
const ATTEMPTS: usize = 5;

/// The message of a refused eviction (kubectl prints it while it retries).
pub const REFUSED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// Evicts pod `name`.
pub async fn evict(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let eviction = read_body(call, body).await?;
    if eviction["metadata"]["name"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return Err(ApiError::bad_request(format!(
            "name in URL does not match name in Eviction object: {name}"
        )));
    }
    let dry = eviction["deleteOptions"]["dryRun"]
        .as_array()
        .is_some_and(|d| !d.is_empty());
    let key = call.key(name);
    for _ in 0..ATTEMPTS {
        let pod = call
            .state
            .storage
            .get(&key)
            .await
            .map_err(|e| call.storage_error(e))?
            .ok_or_else(|| ApiError::not_found("", "pods", name))?;
        if let Some(uid) = eviction["deleteOptions"]["preconditions"]["uid"].as_str()
            && pod.object["metadata"]["uid"].as_str() != Some(uid)
        {
            return Err(ApiError::conflict("", "pods", name));
        }
        let mut ops = Vec::new();
        // A finished pod, or one already going, needs no budget.
        let phase = pod.object["status"]["phase"].as_str();
        let deleting = pod.object["metadata"]["deletionTimestamp"].is_string();
        if !matches!(phase, Some("Succeeded" | "Failed"))
            && !deleting
            && let Some(spend) = budget(call, &key, &pod).await?
        {
            ops.push(spend);
        }
        if dry {
            return Ok(success());
        }
        // The pod is deleted as DELETE deletes it: gracefully when it runs on a node.
        let request = super::deletion::Request {
            finalizer: None,
            grace: eviction["deleteOptions"]["gracePeriodSeconds"].as_i64(),
        };
        match super::deletion::plan(call.kind, &pod.object, &request, jiff::Timestamp::now()) {
            super::deletion::Plan::Keep => return Ok(success()),
            super::deletion::Plan::Mark(marked) => ops.push(WriteOp::Update {
                key: key.clone(),
                object: marked,
                expected: Some(pod.revision),
            }),
            super::deletion::Plan::Remove => {
                ops.extend(
                    deletion_ops(call.state, call.kind, &pod.object)
                        .await
                        .map_err(|e| call.storage_error(e))?,
                );
                ops.push(WriteOp::Delete {
                    key: key.clone(),
                    expected: Some(pod.revision),
                });
            }
        }
        match call.state.storage.write(ops).await {
            Ok(_) => return Ok(success()),
            // The pod or the budget changed meanwhile: read both again.
            Err(StorageError::Conflict { .. }) => continue,
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    Err(ApiError::conflict("", "pods", name))
}

fn success() -> Response<Body> {
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    json_response(StatusCode::CREATED, &status, &[])
}

fn too_many(message: String) -> ApiError {
    ApiError::new(429, "TooManyRequests", message)
}

/// The write that spends one disruption of the budget selecting the pod (none when no budget
/// selects it), or the refusal.
async fn budget(
    call: &Call<'_>,
    key: &ObjectKey,
    pod: &Stored,
) -> Result<Option<WriteOp>, ApiError> {
    let Some(kind) = KINDS
        .iter()
        .find(|k| k.group == "policy" && k.kind == "PodDisruptionBudget")
    else {
        return Ok(None);
    };
    let resource = storage_resource(kind);
    let page = call
        .state
        .storage
        .list(&resource, Some(&key.namespace), None, 0)
        .await
        .map_err(|e| call.storage_error(e))?;
    let labels = &pod.object["metadata"]["labels"];
    let matching: Vec<&Stored> = page
        .items
        .iter()
        .filter(|pdb| {
            // policy/v1: an empty selector selects every pod of the namespace.
            LabelSelector::from_object(&pdb.object["spec"]["selector"])
                .is_ok_and(|s| s.matches(labels))
        })
        .collect();
    let pdb = match matching.as_slice() {
        [] => return Ok(None),
        [one] => *one,
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
    };
    let name = pdb.object["metadata"]["name"].as_str().unwrap_or_default();
    let status = &pdb.object["status"];
    let generation = pdb.object["metadata"]["generation"].as_i64().unwrap_or(0);
    if status["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err(too_many(format!(
            "{REFUSED} The disruption budget {name} is still being processed by the server."
        )));
    }
    let pod_name = pod.object["metadata"]["name"].as_str().unwrap_or_default();
    // An unready pod may go while the budget holds without it (IfHealthyBudget).
    let ready = pod.object["status"]["conditions"]
        .as_array()
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
    let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
    if !ready && healthy >= desired {
        return Ok(None);
    }
    let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed <= 0 {
        return Err(too_many(format!(
            "{REFUSED} The disruption budget {name} needs {desired} healthy pods and has {healthy} currently"
        )));
    }
    let mut spent = pdb.object.clone();
    spent["status"]["disruptionsAllowed"] = json!(allowed - 1);
    if !spent["status"]["disruptedPods"].is_object() {
        spent["status"]["disruptedPods"] = json!({});
    }
    spent["status"]["disruptedPods"][pod_name] = json!(now());
    Ok(Some(WriteOp::Update {
        key: ObjectKey::new(&resource, &key.namespace, name),
        object: spent,
        expected: Some(pdb.revision),
    }))
}
