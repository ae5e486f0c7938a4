//! Handlers for resources: list, get, create, update (the object or its `status`), delete and
//! deletecollection. Watches are in [`super::watch`].

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode};
use ferry_schema::kinds::{KINDS, KindInfo};
use serde_json::{Value, json};

use super::admission::{FieldValidation, ObjectAt, UpdateHow};
use super::catalog::{has_scale, storage_resource};
use super::path::ResourcePath;
use super::request::{accept, body_bytes, content_type, json_response, parse_object};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::table::{table, wants_table};
use super::{ApiState, allocator, apply, watch};
use crate::storage::{ObjectKey, Stored, WriteOp};

/// Items fetched from storage per page while filtering.
const PAGE: usize = 500;

/// Everything a resource request needs.
pub struct Call<'a> {
    /// Shared state.
    pub state: &'a ApiState,
    /// The kind served at the path.
    pub kind: &'static KindInfo,
    /// The parsed path.
    pub path: ResourcePath,
    /// Query parameters.
    pub query: HashMap<String, String>,
    /// Request headers.
    pub headers: HeaderMap,
}

impl Call<'_> {
    fn key(&self, name: &str) -> ObjectKey {
        let ns = if self.kind.namespaced {
            self.path.namespace.clone().unwrap_or_default()
        } else {
            String::new()
        };
        ObjectKey::new(storage_resource(self.kind), ns, name)
    }

    fn storage_error(&self, e: crate::storage::StorageError) -> ApiError {
        ApiError::from_storage(e, self.kind.group, self.kind.plural)
    }

    fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
}

/// Dispatches a resource request.
pub async fn handle(
    call: Call<'_>,
    method: Method,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    if !call.kind.namespaced && call.path.namespace.is_some() {
        return Err(ApiError::no_route());
    }
    let name = call.path.name.clone();
    let sub = call.path.subresource.clone();
    match (method, name, sub.as_deref()) {
        (Method::GET, None, None) => {
            let watching = matches!(call.q("watch"), Some("true" | "1"));
            if watching {
                watch::serve(call).await
            } else {
                list(&call).await
            }
        }
        (Method::GET, Some(name), None | Some("status")) => get(&call, &name).await,
        (Method::GET, Some(name), Some("scale")) if has_scale(call.kind) => {
            get_scale(&call, &name).await
        }
        (Method::PUT, Some(name), Some("scale")) if has_scale(call.kind) => {
            put_scale(&call, &name, body).await
        }
        (Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            patch(&call, &name, body, sub == Some("status")).await
        }
        (Method::PATCH, Some(name), Some("scale")) if has_scale(call.kind) => {
            patch_scale(&call, &name, body).await
        }
        (Method::POST, None, None) => create(&call, body).await,
        (Method::POST, Some(name), Some("binding")) if call.kind.kind == "Pod" => {
            bind(&call, &name, body).await
        }
        (Method::PUT, Some(name), None) => update(&call, &name, body, false).await,
        (Method::PUT, Some(name), Some("status")) => update(&call, &name, body, true).await,
        (Method::DELETE, Some(name), None) => delete(&call, &name, body).await,
        (Method::DELETE, None, None) => delete_collection(&call).await,
        (method, _, sub) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}{}",
            call.kind.plural,
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

/// Objects of the call's resource matching its selectors, in pages, from a cursor.
pub async fn select(
    call: &Call<'_>,
    limit: usize,
    mut after: Option<(String, String)>,
) -> Result<(Vec<Value>, i64, Option<(String, String)>), ApiError> {
    let labels = LabelSelector::parse(call.q("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(call.q("fieldSelector").unwrap_or_default(), call.kind.kind)
        .map_err(ApiError::bad_request)?;
    let resource = storage_resource(call.kind);
    let mut items = Vec::new();
    let mut revision = None;
    loop {
        let cursor = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        let page = call
            .state
            .storage
            .list(&resource, call.path.namespace.as_deref(), cursor, PAGE)
            .await
            .map_err(|e| call.storage_error(e))?;
        revision.get_or_insert(page.revision);
        let exhausted = page.more_after.is_none();
        for Stored { object, .. } in page.items {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let name = object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            after = Some((ns, name));
            if labels.matches(&object["metadata"]["labels"]) && fields.matches(&object) {
                items.push(object);
                if limit > 0 && items.len() == limit {
                    return Ok((
                        items,
                        revision.unwrap_or_default(),
                        if exhausted { None } else { after },
                    ));
                }
            }
        }
        if exhausted {
            return Ok((items, revision.unwrap_or_default(), None));
        }
    }
}

/// Reads the object at `key`, or answers 404.
async fn fetch(call: &Call<'_>, key: &ObjectKey) -> Result<Stored, ApiError> {
    call.state
        .storage
        .get(key)
        .await
        .map_err(|e| call.storage_error(e))?
        .ok_or_else(|| ApiError::not_found(call.kind.group, call.kind.plural, &key.name))
}

fn encode_continue(cursor: &(String, String)) -> String {
    json!([cursor.0, cursor.1])
        .to_string()
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Result<(String, String), ApiError> {
    let bad = || ApiError::bad_request("invalid continue token");
    if !token.len().is_multiple_of(2) {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let value: Value = serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    match (value[0].as_str(), value[1].as_str()) {
        (Some(ns), Some(name)) => Ok((ns.to_owned(), name.to_owned())),
        _ => Err(bad()),
    }
}

/// A list passed through as stored: no selectors and no Table, so no body is parsed; the
/// database joins the bodies into one text.
async fn list_passthrough(
    call: &Call<'_>,
    limit: usize,
    after: Option<(String, String)>,
) -> Result<Response<Body>, ApiError> {
    let cursor = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
    let page = call
        .state
        .storage
        .list_joined(
            &storage_resource(call.kind),
            call.path.namespace.as_deref(),
            cursor,
            limit,
        )
        .await
        .map_err(|e| call.storage_error(e))?;
    let mut metadata = json!({"resourceVersion": page.revision.to_string()});
    if let Some(cursor) = &page.more_after {
        metadata["continue"] = json!(encode_continue(cursor));
    }
    let mut out = String::with_capacity(page.items.len() + 256);
    out.push_str(&format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{metadata},\"items\":[",
        json!(format!("{}List", call.kind.kind)),
        json!(call.kind.api_version())
    ));
    out.push_str(&page.items);
    out.push_str("]}");
    let mut response = Response::new(Body::from(out));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn list(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let limit = match call.q("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| ApiError::bad_request("limit must be a non-negative integer"))?,
        None => 0,
    };
    let after = call
        .q("continue")
        .filter(|t| !t.is_empty())
        .map(decode_continue)
        .transpose()?;
    let filtered = call.q("labelSelector").is_some_and(|s| !s.is_empty())
        || call.q("fieldSelector").is_some_and(|s| !s.is_empty());
    if !filtered && !wants_table(&accept(&call.headers)) {
        return list_passthrough(call, limit, after).await;
    }
    let (items, revision, more) = select(call, limit, after).await?;
    let token = more.as_ref().map(encode_continue);
    if wants_table(&accept(&call.headers)) {
        let t = table(
            call.kind.kind,
            &items,
            &revision.to_string(),
            token.as_deref(),
        );
        return Ok(json_response(StatusCode::OK, &t, &[]));
    }
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(token) = token {
        metadata["continue"] = json!(token);
    }
    let list = json!({
        "kind": format!("{}List", call.kind.kind),
        "apiVersion": call.kind.api_version(),
        "metadata": metadata,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list, &[]))
}

fn respond_object(
    call: &Call<'_>,
    code: StatusCode,
    object: &Value,
    warnings: &[String],
) -> Response<Body> {
    if wants_table(&accept(&call.headers)) {
        let rv = object["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default();
        return json_response(
            code,
            &table(call.kind.kind, std::slice::from_ref(object), rv, None),
            warnings,
        );
    }
    json_response(code, object, warnings)
}

async fn get(call: &Call<'_>, name: &str) -> Result<Response<Body>, ApiError> {
    match call
        .state
        .storage
        .get(&call.key(name))
        .await
        .map_err(|e| call.storage_error(e))?
    {
        Some(stored) => Ok(respond_object(call, StatusCode::OK, &stored.object, &[])),
        None => Err(ApiError::not_found(call.kind.group, call.kind.plural, name)),
    }
}

/// The precondition that the request's namespace exists, checked inside the write's
/// transaction (so a namespace deleted meanwhile cannot receive the object).
fn namespace_precondition(call: &Call<'_>) -> Option<WriteOp> {
    let ns = call
        .path
        .namespace
        .as_deref()
        .filter(|_| call.kind.namespaced)?;
    Some(WriteOp::Require {
        key: ObjectKey::new("namespaces", "", ns),
    })
}

/// A NotFound about the request's namespace reads as the namespace being missing.
fn create_error(call: &Call<'_>, error: crate::storage::StorageError) -> ApiError {
    match error {
        crate::storage::StorageError::NotFound(key) if key.resource == "namespaces" => {
            ApiError::not_found("", "namespaces", &key.name)
        }
        other => call.storage_error(other),
    }
}

async fn read_body(call: &Call<'_>, body: Body) -> Result<Value, ApiError> {
    let bytes = body_bytes(body).await?;
    parse_object(&bytes, &content_type(&call.headers))
}

fn is_dry_run(call: &Call<'_>) -> bool {
    call.q("dryRun").is_some_and(|d| d == "All")
}

async fn create(call: &Call<'_>, body: Body) -> Result<Response<Body>, ApiError> {
    let object = read_body(call, body).await?;
    let fv = FieldValidation::parse(call.q("fieldValidation"))?;
    let (mut object, warnings) =
        call.state
            .admission
            .create(call.kind, call.path.namespace.as_deref(), object, fv)?;
    apply::record_update(None, &mut object, &manager(call));
    insert_new(call, object, warnings).await
}

/// What goes with the deletion of `object` (at `key`) in the same transaction: everything in
/// a Namespace, and a Service's ClusterIP and NodePort reservations.
pub(crate) async fn deletion_ops(
    state: &ApiState,
    kind: &KindInfo,
    key: &ObjectKey,
    object: &Value,
) -> Result<Vec<WriteOp>, crate::storage::StorageError> {
    let mut ops = Vec::new();
    if kind.group.is_empty() && kind.kind == "Namespace" {
        for inner in KINDS.iter().filter(|k| k.namespaced) {
            let page = state
                .storage
                .list(&storage_resource(inner), Some(&key.name), None, 0)
                .await?;
            for item in page.items {
                let item_name = item.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if inner.group.is_empty() && inner.kind == "Service" {
                    ops.extend(release_reservations(&item.object));
                }
                ops.push(WriteOp::Delete {
                    key: ObjectKey::new(storage_resource(inner), &key.name, item_name),
                    expected: Some(item.revision),
                });
            }
        }
    }
    if kind.group.is_empty() && kind.kind == "Service" {
        ops.extend(release_reservations(object));
    }
    Ok(ops)
}

/// Deletes of a Service's ClusterIP and NodePort reservations.
fn release_reservations(service: &Value) -> impl Iterator<Item = WriteOp> {
    allocator::reservations(service)
        .into_iter()
        .map(|key| WriteOp::Delete {
            key,
            expected: None,
        })
}

/// Stores a new, admitted object: its namespace must exist, a Service gets its ClusterIP and
/// NodePorts, and a dry run stops before the write.
async fn insert_new(
    call: &Call<'_>,
    object: Value,
    warnings: Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if is_dry_run(call) {
        return Ok(respond_object(
            call,
            StatusCode::CREATED,
            &object,
            &warnings,
        ));
    }
    let is_service = call.kind.group.is_empty() && call.kind.kind == "Service";
    let explicit = if is_service {
        allocator::reservations(&object)
    } else {
        Vec::new()
    };
    let mut attempt = 0;
    let changes = loop {
        attempt += 1;
        let mut object = object.clone();
        let mut ops: Vec<WriteOp> = namespace_precondition(call).into_iter().collect();
        if is_service {
            ops.extend(allocator::allocate(&call.state.ranges, &mut object)?);
        }
        ops.push(WriteOp::Create {
            key: call.key(&name),
            object,
        });
        match call.state.storage.write(ops).await {
            Ok(changes) => break changes,
            // Another Service holds that IP or port: an automatic pick tries again, a value
            // the user asked for is refused.
            Err(crate::storage::StorageError::AlreadyExists(key))
                if allocator::is_reservation(&key) =>
            {
                if explicit.contains(&key) || attempt >= 8 {
                    let field = if key.resource == allocator::CLUSTER_IPS {
                        "spec.clusterIP"
                    } else {
                        "spec.ports.nodePort"
                    };
                    return Err(ApiError::invalid(
                        "",
                        "Service",
                        &name,
                        vec![super::status::Cause {
                            reason: "FieldValueInvalid",
                            field: field.into(),
                            message: format!("{} is already allocated", key.name),
                        }],
                    ));
                }
            }
            Err(e) => return Err(create_error(call, e)),
        }
    };
    let created = changes
        .last()
        .map(|c| (*c.object).clone())
        .unwrap_or_default();
    Ok(respond_object(
        call,
        StatusCode::CREATED,
        &created,
        &warnings,
    ))
}

fn expected_revision(object: &Value) -> Result<Option<i64>, ApiError> {
    match object["metadata"]["resourceVersion"].as_str() {
        None | Some("") => Ok(None),
        Some(rv) => rv
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))),
    }
}

fn has_finalizers(object: &Value) -> bool {
    object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
}

async fn update(
    call: &Call<'_>,
    name: &str,
    body: Body,
    status_only: bool,
) -> Result<Response<Body>, ApiError> {
    let object = read_body(call, body).await?;
    let fv = FieldValidation::parse(call.q("fieldValidation"))?;
    let key = call.key(name);
    let old = fetch(call, &key).await?;
    let expected = expected_revision(&object)?;
    let (object, warnings) = admit_update(call, name, &old.object, object, status_only, fv)?;
    if is_dry_run(call) {
        return Ok(respond_object(call, StatusCode::OK, &object, &warnings));
    }
    let expected = Some(expected.unwrap_or(old.revision));
    // The last finalizer of an object being deleted is gone: the object goes.
    let op = replacement(key, object, expected);
    let changes = call
        .state
        .storage
        .write(vec![op])
        .await
        .map_err(|e| call.storage_error(e))?;
    Ok(respond_object(
        call,
        StatusCode::OK,
        &changes[0].object,
        &warnings,
    ))
}

/// The write that replaces an object: an update, except that an object being deleted whose
/// last finalizer is now gone is deleted for good.
fn replacement(key: ObjectKey, object: Value, expected: Option<i64>) -> WriteOp {
    if object["metadata"]["deletionTimestamp"].is_string() && !has_finalizers(&object) {
        WriteOp::Delete { key, expected }
    } else {
        WriteOp::Update {
            key,
            object,
            expected,
        }
    }
}

/// The delete preconditions from a DeleteOptions body.
fn delete_preconditions(options: &Value) -> (Option<i64>, Option<String>) {
    let pre = &options["preconditions"];
    let rv = pre["resourceVersion"].as_str().and_then(|r| r.parse().ok());
    let uid = pre["uid"].as_str().map(str::to_owned);
    (rv, uid)
}

async fn delete(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let bytes = body_bytes(body).await?;
    let options: Value = if bytes.is_empty() {
        json!({})
    } else {
        parse_object(&bytes, &content_type(&call.headers))?
    };
    if let Some(policy) = options["propagationPolicy"]
        .as_str()
        .or(call.q("propagationPolicy"))
        && !matches!(policy, "Orphan" | "Background" | "Foreground")
    {
        return Err(ApiError::bad_request(format!(
            "propagationPolicy must be Orphan, Background or Foreground; got {policy:?}"
        )));
    }
    let key = call.key(name);
    let stored = fetch(call, &key).await?;
    let (rv, uid) = delete_preconditions(&options);
    if let Some(uid) = uid
        && stored.object["metadata"]["uid"].as_str() != Some(uid.as_str())
    {
        return Err(ApiError::conflict(call.kind.group, call.kind.plural, name));
    }
    let expected = Some(rv.unwrap_or(stored.revision));
    if is_dry_run(call) {
        return Ok(respond_object(call, StatusCode::OK, &stored.object, &[]));
    }
    let mut ops = Vec::new();
    if has_finalizers(&stored.object) {
        // Finalizers hold the object: mark it, and whoever owns a finalizer finishes the job.
        let mut object = stored.object.clone();
        if !object["metadata"]["deletionTimestamp"].is_string() {
            object["metadata"]["deletionTimestamp"] = json!(
                jiff::Timestamp::now()
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            );
            object["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        ops.push(WriteOp::Update {
            key,
            object,
            expected,
        });
        let changes = call
            .state
            .storage
            .write(ops)
            .await
            .map_err(|e| call.storage_error(e))?;
        return Ok(respond_object(
            call,
            StatusCode::OK,
            &changes[0].object,
            &[],
        ));
    }
    ops.extend(
        deletion_ops(call.state, call.kind, &key, &stored.object)
            .await
            .map_err(|e| call.storage_error(e))?,
    );
    ops.push(WriteOp::Delete { key, expected });
    let changes = call
        .state
        .storage
        .write(ops)
        .await
        .map_err(|e| call.storage_error(e))?;
    let last = changes
        .last()
        .map(|c| (*c.object).clone())
        .unwrap_or_default();
    Ok(respond_object(call, StatusCode::OK, &last, &[]))
}

async fn delete_collection(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let (items, _, _) = select(call, 0, None).await?;
    let mut ops: Vec<WriteOp> = items
        .iter()
        .map(|o| WriteOp::Delete {
            key: call.key(o["metadata"]["name"].as_str().unwrap_or_default()),
            expected: o["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse().ok()),
        })
        .collect();
    if call.kind.group.is_empty() && call.kind.kind == "Service" {
        for item in &items {
            ops.extend(release_reservations(item));
        }
    }
    let changes = if ops.is_empty() || is_dry_run(call) {
        Vec::new()
    } else {
        call.state
            .storage
            .write(ops)
            .await
            .map_err(|e| call.storage_error(e))?
    };
    let revision = changes.last().map(|c| c.revision).unwrap_or_default();
    let resource = storage_resource(call.kind);
    let changes: Vec<_> = changes
        .into_iter()
        .filter(|c| c.key.resource == resource)
        .collect();
    let list = json!({
        "kind": format!("{}List", call.kind.kind),
        "apiVersion": call.kind.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": changes.iter().map(|c| (*c.object).clone()).collect::<Vec<_>>(),
    });
    Ok(json_response(StatusCode::OK, &list, &[]))
}

/// Applies a patch of the request's media type to `target`.
fn apply_patch(call: &Call<'_>, target: &mut Value, bytes: &[u8]) -> Result<(), ApiError> {
    let media = content_type(&call.headers);
    let invalid = |e: String| ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("the patch could not be applied: {e}"),
        details: None,
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
                super::strategic::apply(target, &patch);
            }
            Ok(())
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// `POST pods/{name}/binding`: assigns a pod to a node (what a scheduler does). The pod must
/// not be bound already; the binding's UID and resourceVersion, when given, are preconditions.
async fn bind(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let binding = read_body(call, body).await?;
    let node = binding["target"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::invalid(
                "",
                "Binding",
                name,
                vec![super::status::Cause {
                    reason: "FieldValueRequired",
                    field: "target.name".into(),
                    message: "the node to bind to is required".into(),
                }],
            )
        })?;
    if binding["target"]["kind"]
        .as_str()
        .is_some_and(|k| !k.is_empty() && k != "Node")
    {
        return Err(ApiError::bad_request("a pod can only be bound to a Node"));
    }
    let key = call.key(name);
    let stored = fetch(call, &key).await?;
    if let Some(uid) = binding["metadata"]["uid"].as_str()
        && stored.object["metadata"]["uid"].as_str() != Some(uid)
    {
        return Err(ApiError::conflict(call.kind.group, call.kind.plural, name));
    }
    if let Some(bound) = stored.object["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
    {
        return Err(ApiError {
            code: 409,
            reason: "Conflict",
            message: format!(
                "Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""
            ),
            details: None,
        });
    }
    let expected = expected_revision(&binding)?.unwrap_or(stored.revision);
    let mut object = stored.object.clone();
    object["spec"]["nodeName"] = json!(node);
    apply::record_update(Some(&stored.object), &mut object, &manager(call));
    call.state
        .storage
        .write(vec![WriteOp::Update {
            key,
            object,
            expected: Some(expected),
        }])
        .await
        .map_err(|e| call.storage_error(e))?;
    let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
    Ok(json_response(StatusCode::CREATED, &status, &[]))
}

/// Admission of a replacement of `old`, with the writer's field ownership recorded.
fn admit_update(
    call: &Call<'_>,
    name: &str,
    old: &Value,
    object: Value,
    status_only: bool,
    field_validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let at = ObjectAt {
        namespace: call.path.namespace.as_deref(),
        name,
    };
    let how = UpdateHow {
        status_only,
        field_validation,
    };
    let (mut object, warnings) = call
        .state
        .admission
        .update(call.kind, at, old, object, how)?;
    apply::record_update(Some(old), &mut object, &manager(call));
    Ok((object, warnings))
}

/// Who is writing: the `fieldManager` parameter, else the client's name from its User-Agent.
fn manager(call: &Call<'_>) -> String {
    if let Some(m) = call.q("fieldManager").filter(|m| !m.is_empty()) {
        return m.to_owned();
    }
    call.headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|m| !m.is_empty())
        .unwrap_or("unknown")
        .to_owned()
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
    for attempt in 1..=PATCH_ATTEMPTS {
        let stored = call
            .state
            .storage
            .get(&key)
            .await
            .map_err(|e| call.storage_error(e))?;
        let Some(stored) = stored else {
            let mut object = apply::apply(None, &config, &manager, force, who)?;
            object["metadata"]["name"] = json!(name);
            let (object, warnings) = call.state.admission.create(
                call.kind,
                call.path.namespace.as_deref(),
                object,
                fv,
            )?;
            return insert_new(call, object, warnings).await;
        };
        let object = apply::apply(Some(&stored.object), &config, &manager, force, who)?;
        let at = ObjectAt {
            namespace: call.path.namespace.as_deref(),
            name,
        };
        let how = UpdateHow {
            status_only: false,
            field_validation: fv,
        };
        let (object, warnings) =
            call.state
                .admission
                .update(call.kind, at, &stored.object, object, how)?;
        if is_dry_run(call) {
            return Ok(respond_object(call, StatusCode::OK, &object, &warnings));
        }
        let op = WriteOp::Update {
            key: key.clone(),
            object,
            expected: Some(stored.revision),
        };
        match call.state.storage.write(vec![op]).await {
            Ok(changes) => {
                return Ok(respond_object(
                    call,
                    StatusCode::OK,
                    &changes[0].object,
                    &warnings,
                ));
            }
            Err(crate::storage::StorageError::Conflict { .. }) if attempt < PATCH_ATTEMPTS => {
                continue;
            }
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    Err(ApiError::conflict(call.kind.group, call.kind.plural, name))
}

/// How many times a patch is re-applied when the object changed under it.
const PATCH_ATTEMPTS: usize = 5;

async fn patch(
    call: &Call<'_>,
    name: &str,
    body: Body,
    status_only: bool,
) -> Result<Response<Body>, ApiError> {
    let bytes = body_bytes(body).await?;
    if content_type(&call.headers) == "application/apply-patch+yaml" && !status_only {
        return server_side_apply(call, name, &bytes).await;
    }
    let fv = FieldValidation::parse(call.q("fieldValidation"))?;
    let key = call.key(name);
    for attempt in 1..=PATCH_ATTEMPTS {
        let stored = fetch(call, &key).await?;
        let mut patched = stored.object.clone();
        apply_patch(call, &mut patched, &bytes)?;
        // A resourceVersion in the patch is a precondition; without one, retry on conflicts.
        let pinned = expected_revision(&patched)?.filter(|rv| *rv != stored.revision);
        let expected = pinned.unwrap_or(stored.revision);
        let (object, warnings) =
            admit_update(call, name, &stored.object, patched, status_only, fv)?;
        if is_dry_run(call) {
            return Ok(respond_object(call, StatusCode::OK, &object, &warnings));
        }
        let op = replacement(key.clone(), object, Some(expected));
        match call.state.storage.write(vec![op]).await {
            Ok(changes) => {
                return Ok(respond_object(
                    call,
                    StatusCode::OK,
                    &changes[0].object,
                    &warnings,
                ));
            }
            Err(crate::storage::StorageError::Conflict { .. })
                if pinned.is_none() && attempt < PATCH_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    Err(ApiError::conflict(call.kind.group, call.kind.plural, name))
}

/// The `autoscaling/v1` Scale view of a scalable object.
fn scale_of(object: &Value) -> Value {
    let selector: Vec<String> = object["spec"]["selector"]["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": object["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.join(",")},
    })
}

async fn get_scale(call: &Call<'_>, name: &str) -> Result<Response<Body>, ApiError> {
    let stored = fetch(call, &call.key(name)).await?;
    Ok(json_response(
        StatusCode::OK,
        &scale_of(&stored.object),
        &[],
    ))
}

/// Writes a new replica count, from a Scale object the caller produced from the current one.
async fn write_scale(
    call: &Call<'_>,
    name: &str,
    make: impl Fn(&Value) -> Result<Value, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let key = call.key(name);
    for attempt in 1..=PATCH_ATTEMPTS {
        let stored = fetch(call, &key).await?;
        let scale = make(&scale_of(&stored.object))?;
        let Some(replicas) = scale["spec"]["replicas"].as_i64() else {
            return Err(ApiError::bad_request("spec.replicas must be an integer"));
        };
        let pinned = expected_revision(&scale)?.filter(|rv| *rv != stored.revision);
        let mut object = stored.object.clone();
        object["spec"]["replicas"] = json!(replicas);
        let at = ObjectAt {
            namespace: call.path.namespace.as_deref(),
            name,
        };
        let how = UpdateHow {
            status_only: false,
            field_validation: FieldValidation::Strict,
        };
        let (mut object, _) =
            call.state
                .admission
                .update(call.kind, at, &stored.object, object, how)?;
        apply::record_update(Some(&stored.object), &mut object, &manager(call));
        let op = WriteOp::Update {
            key: key.clone(),
            object,
            expected: Some(pinned.unwrap_or(stored.revision)),
        };
        match call.state.storage.write(vec![op]).await {
            Ok(changes) => {
                return Ok(json_response(
                    StatusCode::OK,
                    &scale_of(&changes[0].object),
                    &[],
                ));
            }
            Err(crate::storage::StorageError::Conflict { .. })
                if pinned.is_none() && attempt < PATCH_ATTEMPTS =>
            {
                continue;
            }
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    Err(ApiError::conflict(call.kind.group, call.kind.plural, name))
}

async fn put_scale(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let scale = read_body(call, body).await?;
    write_scale(call, name, |_| Ok(scale.clone())).await
}

async fn patch_scale(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let bytes = body_bytes(body).await?;
    write_scale(call, name, |current| {
        let mut scale = current.clone();
        apply_patch(call, &mut scale, &bytes)?;
        Ok(scale)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let cursor = ("default".to_owned(), "web-1".to_owned());
        assert_eq!(
            decode_continue(&encode_continue(&cursor)).expect("decodes"),
            cursor
        );
        assert!(decode_continue("zz").is_err());
    }
}
