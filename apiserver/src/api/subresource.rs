//! Subresources other than `status`: `scale` (read, replace, patch) for the scalable kinds,
//! and `pods/binding`, which is how a scheduler assigns a pod to a node.

use axum::body::Body;
use axum::http::{Response, StatusCode};
use ferry_schema::selector::LabelSelector;
use ferry_schema::structural::{ScalePaths, json_path, set_json_path};
use serde_json::{Value, json};

use super::admission::{FieldValidation, UpdateHow};
use super::apply;
use super::request::{body_bytes, json_response};
use super::resource::{Call, expected_revision, manager, read_body};
use super::status::{ApiError, Cause};
use super::write::{Made, admit_update, apply_patch, read_modify_write};

/// The `autoscaling/v1` Scale view of a scalable object; a custom resource's replicas and
/// selector are where its CRD's scale paths say.
pub fn scale_of(object: &Value, paths: Option<&ScalePaths>) -> Value {
    if let Some(paths) = paths {
        let meta = &object["metadata"];
        let number = |path: &str| json_path(object, path).and_then(Value::as_i64).unwrap_or(0);
        let selector = paths
            .label_selector
            .as_deref()
            .and_then(|p| json_path(object, p))
            .and_then(Value::as_str)
            .unwrap_or_default();
        return json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": number(&paths.spec_replicas)},
            "status": {"replicas": number(&paths.status_replicas), "selector": selector},
        });
    }
    let selector = &object["spec"]["selector"];
    // Deployments and the like carry a LabelSelector; a ReplicationController a plain map.
    let selector =
        if selector.get("matchLabels").is_some() || selector.get("matchExpressions").is_some() {
            LabelSelector::from_object(selector).unwrap_or_default()
        } else {
            LabelSelector::from_map(selector)
        };
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.to_string()},
    })
}

/// `GET .../scale`.
pub async fn get_scale(call: &Call<'_>, name: &str) -> Result<Response<Body>, ApiError> {
    let stored = call
        .state
        .storage
        .get(&call.key(name))
        .await
        .map_err(|e| call.storage_error(e))?
        .ok_or_else(|| ApiError::not_found(call.kind.group, call.kind.plural, name))?;
    let paths = call.custom().and_then(|c| c.scale.clone());
    Ok(json_response(
        StatusCode::OK,
        &scale_of(&stored.object, paths.as_ref()),
        &[],
    ))
}

/// Writes a new replica count, from a Scale object the caller makes from the current one.
async fn write_scale(
    call: &Call<'_>,
    name: &str,
    make: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let how = UpdateHow {
        status_only: false,
        field_validation: FieldValidation::Strict,
    };
    let paths = call.custom().and_then(|c| c.scale.clone());
    let written = read_modify_write(call, &call.key(name), |stored| {
        let scale = make(&scale_of(&stored.object, paths.as_ref()))?;
        let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
            return Err(ApiError::bad_request("spec.replicas must be an integer"));
        };
        let pinned = expected_revision(&scale)?;
        let mut object = stored.object.clone();
        match &paths {
            Some(paths) => set_json_path(&mut object, &paths.spec_replicas, json!(replicas)),
            None => object["spec"]["replicas"] = json!(replicas),
        }
        let (object, warnings) = admit_update(call, name, &stored.object, object, how)?;
        Ok(Made {
            object,
            warnings,
            pinned,
        })
    })
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &scale_of(written.object(), paths.as_ref()),
        &written.warnings,
    ))
}

/// `PUT .../scale`.
pub async fn put_scale(
    call: &Call<'_>,
    name: &str,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    let scale = read_body(call, body).await?;
    write_scale(call, name, |_| Ok(scale.clone())).await
}

/// `PATCH .../scale`.
pub async fn patch_scale(
    call: &Call<'_>,
    name: &str,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    let bytes = body_bytes(body).await?;
    write_scale(call, name, |current| {
        let mut scale = current.clone();
        apply_patch(call, &mut scale, &bytes)?;
        Ok(scale)
    })
    .await
}

/// `POST pods/{name}/binding`: assigns a pod to a node (what a scheduler does). The pod must
/// not be bound already; the binding's UID and resourceVersion, when given, are preconditions.
pub async fn bind(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let binding = read_body(call, body).await?;
    let node = binding["target"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                name,
                vec![Cause {
                    reason: "FieldValueRequired",
                    field: "target.name".into(),
                    message: "Required value".into(),
                }],
            )
        })?
        .to_owned();
    if binding["target"]["kind"]
        .as_str()
        .is_some_and(|k| !k.is_empty() && k != "Node")
    {
        return Err(ApiError::bad_request("a pod can only be bound to a Node"));
    }
    let pinned = expected_revision(&binding)?;
    let uid = binding["metadata"]["uid"].as_str().map(str::to_owned);
    read_modify_write(call, &call.key(name), |stored| {
        if let Some(uid) = &uid
            && stored.object["metadata"]["uid"].as_str() != Some(uid.as_str())
        {
            return Err(ApiError::conflict(call.kind.group, call.kind.plural, name));
        }
        if let Some(bound) = stored.object["spec"]["nodeName"]
            .as_str()
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""
                ),
            ));
        }
        let mut object = stored.object.clone();
        object["spec"]["nodeName"] = json!(node);
        apply::record_update(Some(&stored.object), &mut object, &manager(call));
        Ok(Made {
            object,
            warnings: Vec::new(),
            pinned,
        })
    })
    .await?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(StatusCode::CREATED, &status, &[]))
}
