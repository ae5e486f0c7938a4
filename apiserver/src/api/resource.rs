//! Handlers for resources: list, get, create, update (the object or its `status`), delete and
//! deletecollection. Watches are in [`super::watch`].

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Response, StatusCode};
use ferry_schema::kinds::KindInfo;
use serde_json::{Value, json};

use super::admission::FieldValidation;
use super::catalog::{has_scale, storage_resource};
use super::path::ResourcePath;
use super::request::{
    Shape, body_bytes, content_type, json_response, json_text_response, parse_object,
};
use super::status::ApiError;
use super::table::table;
use super::write::dry_run;
use super::{ApiState, allocator, apply, list, subresource, watch, write};
use crate::storage::{Change, ObjectKey, Stored, WriteOp};

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
    /// The storage key of the object `name` at the request's path.
    pub fn key(&self, name: &str) -> ObjectKey {
        let ns = if self.kind.namespaced {
            self.path.namespace.clone().unwrap_or_default()
        } else {
            String::new()
        };
        ObjectKey::new(storage_resource(self.kind), ns, name)
    }

    /// A storage error as the API reports it for this resource.
    pub fn storage_error(&self, e: crate::storage::StorageError) -> ApiError {
        ApiError::from_storage(e, self.kind.group, self.kind.plural)
    }

    /// What the CRD says about the call's kind, when it is a custom one.
    pub fn custom(&self) -> Option<std::sync::Arc<ferry_schema::structural::CrdVersion>> {
        self.state.admission.crds().of(self.kind)
    }

    /// Does the kind have a scale subresource?
    pub fn has_scale(&self) -> bool {
        match self.custom() {
            Some(custom) => custom.scale.is_some(),
            None => has_scale(self.kind),
        }
    }

    /// A Table of objects of the call's kind: the kind's columns, or a CRD's printer columns.
    pub fn table(&self, objects: &[Value], resource_version: &str, token: Option<&str>) -> Value {
        match self.custom() {
            Some(custom) => super::crd::columns::table(&custom, objects, resource_version, token),
            None => table(self.kind.kind, objects, resource_version, token),
        }
    }

    /// An object as the request's version shows it: custom resources are stored once for all
    /// their versions (conversion `None`), so the apiVersion is the one asked for.
    pub fn present(&self, mut object: Value) -> Value {
        if self.custom().is_some()
            && let Some(map) = object.as_object_mut()
        {
            map.insert("apiVersion".into(), json!(self.kind.api_version()));
        }
        object
    }

    /// A query parameter.
    pub fn q(&self, name: &str) -> Option<&str> {
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
                list::list(&call).await
            }
        }
        (Method::GET, Some(name), None | Some("status")) => get(&call, &name).await,
        (Method::GET, Some(name), Some("log"))
            if call.kind.group.is_empty() && call.kind.kind == "Pod" =>
        {
            super::podlog::log(&call, &name).await
        }
        (Method::GET, Some(name), Some("scale")) if call.has_scale() => {
            subresource::get_scale(&call, &name).await
        }
        (Method::PUT, Some(name), Some("scale")) if call.has_scale() => {
            subresource::put_scale(&call, &name, body).await
        }
        (Method::PATCH, Some(name), sub @ (None | Some("status"))) => {
            write::patch(&call, &name, body, sub == Some("status")).await
        }
        (Method::PATCH, Some(name), Some("scale")) if call.has_scale() => {
            subresource::patch_scale(&call, &name, body).await
        }
        (Method::POST, None, None) => create(&call, body).await,
        (Method::POST, Some(name), Some("binding")) if call.kind.kind == "Pod" => {
            subresource::bind(&call, &name, body).await
        }
        (Method::POST, Some(name), Some("eviction")) if call.kind.kind == "Pod" => {
            super::eviction::evict(&call, &name, body).await
        }
        (Method::PUT, Some(name), None) => write::update(&call, &name, body, false).await,
        (Method::PUT, Some(name), Some("status")) => write::update(&call, &name, body, true).await,
        (Method::PUT, Some(name), Some("finalize")) if is_namespace(call.kind) => {
            finalize(&call, &name, body).await
        }
        (Method::DELETE, Some(name), None) => delete(&call, &name, body).await,
        (Method::DELETE, None, None) => delete_collection(&call, body).await,
        (method, _, sub) => Err(ApiError::method_not_allowed(format!(
            "{method} is not supported on {}{}",
            call.kind.plural,
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}

/// The object in the shape the client asked for (itself, a Table, or its metadata).
pub fn respond_object(
    call: &Call<'_>,
    code: StatusCode,
    object: &Value,
    warnings: &[String],
) -> Response<Body> {
    let presented;
    let object = if call.custom().is_some() {
        presented = call.present(object.clone());
        &presented
    } else {
        object
    };
    match Shape::of(&call.headers) {
        Shape::Table => {
            let rv = object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            json_response(
                code,
                &call.table(std::slice::from_ref(object), rv, None),
                warnings,
            )
        }
        Shape::Metadata => json_response(code, &list::partial_metadata(object), warnings),
        Shape::Object => json_response(code, object, warnings),
    }
}

/// Answers with an object just written: plain JSON of a built-in kind is its stored text as
/// it is (no copy of the object, no second encoding), any other shape as [`respond_object`].
pub fn respond_change(
    call: &Call<'_>,
    code: StatusCode,
    change: &Change,
    warnings: &[String],
) -> Response<Body> {
    if call.custom().is_none() && Shape::of(&call.headers) == Shape::Object {
        return json_text_response(code, change.body.to_string(), warnings);
    }
    respond_object(call, code, &change.object, warnings)
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

/// A NotFound about the request's namespace reads as the namespace being missing; a
/// terminating namespace refuses new content (403, as Kubernetes' NamespaceLifecycle).
pub(crate) fn create_error(
    call: &Call<'_>,
    name: &str,
    error: crate::storage::StorageError,
) -> ApiError {
    match error {
        crate::storage::StorageError::NotFound(key) if key.resource == "namespaces" => {
            ApiError::not_found("", "namespaces", &key.name)
        }
        crate::storage::StorageError::Terminating(key) => ApiError::forbidden(
            call.kind.group,
            call.kind.plural,
            name,
            &super::status::terminating_message(&key.name),
        ),
        other => call.storage_error(other),
    }
}

/// Is the kind the core Namespace?
pub(crate) fn is_namespace(kind: &KindInfo) -> bool {
    kind.group.is_empty() && kind.kind == "Namespace"
}

/// `PUT namespaces/NAME/finalize`: replaces `spec.finalizers`; the namespace finisher deletes a
/// terminating namespace left with neither content nor finalizers.
async fn finalize(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let wanted = read_body(call, body).await?;
    let pinned = expected_revision(&wanted)?;
    let written = write::read_modify_write(call, &call.key(name), |stored| {
        Ok(write::Made {
            object: super::namespace::finalized(&stored.object, &wanted),
            warnings: Vec::new(),
            pinned,
        })
    })
    .await?;
    Ok(written.respond(call, StatusCode::OK))
}

/// The request body as one object.
pub async fn read_body(call: &Call<'_>, body: Body) -> Result<Value, ApiError> {
    let bytes = body_bytes(body).await?;
    parse_object(&bytes, &content_type(&call.headers))
}

async fn create(call: &Call<'_>, body: Body) -> Result<Response<Body>, ApiError> {
    let mut object = read_body(call, body).await?;
    if call.kind.group.is_empty() && call.kind.kind == "Pod" {
        super::priority::admit_pod(call.state.admission.priorities(), &mut object)?;
        if let Some(namespace) = call.path.namespace.as_deref() {
            let ranges = call.state.admission.limit_ranges().of(namespace);
            super::limitrange::admit_pod(&ranges, &mut object)?;
        }
    }
    let fv = FieldValidation::parse(call.q("fieldValidation"))?;
    let (mut object, warnings) =
        call.state
            .admission
            .create(call.kind, call.path.namespace.as_deref(), object, fv)?;
    apply::record_update(None, &mut object, &manager(call));
    insert_new(call, object, warnings).await
}

/// What goes with the deletion of `object` in the same transaction: a Service's ClusterIP and
/// NodePort reservations, a CustomResourceDefinition's objects. (A Namespace's content is
/// [`super::namespace::deletion_ops`]'s.)
pub(crate) async fn deletion_ops(
    state: &ApiState,
    kind: &KindInfo,
    object: &Value,
) -> Result<Vec<WriteOp>, crate::storage::StorageError> {
    let mut ops = Vec::new();
    if kind.group.is_empty() && kind.kind == "Service" {
        ops.extend(release_reservations(object));
    }
    if kind.group == "apiextensions.k8s.io" && kind.kind == "CustomResourceDefinition" {
        // Deleting a CRD deletes its objects, in the same transaction.
        let (group, plural) = (&object["spec"]["group"], &object["spec"]["names"]["plural"]);
        if let (Some(group), Some(plural)) = (group.as_str(), plural.as_str()) {
            let resource = format!("{group}/{plural}");
            for item in state.storage.list(&resource, None, None, 0).await?.items {
                let meta = &item.object["metadata"];
                ops.push(WriteOp::Delete {
                    key: ObjectKey::new(
                        &resource,
                        meta["namespace"].as_str().unwrap_or_default(),
                        meta["name"].as_str().unwrap_or_default(),
                    ),
                    expected: Some(item.revision),
                });
            }
        }
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
/// NodePorts, quotas are charged, and a dry run stops before the write (after the quotas'
/// check).
pub async fn insert_new(
    call: &Call<'_>,
    object: Value,
    warnings: Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if dry_run(call)? {
        // A dry run is refused where the create would be, and charges nothing.
        super::quota::charge(call, &object).await?;
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
        ops.extend(super::quota::charge(call, &object).await?);
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
            // Another create took quota first: charge again from the new usage.
            Err(crate::storage::StorageError::Conflict { key, .. })
                if super::quota::is_quota(&key) && attempt < 8 => {}
            Err(e) => return Err(create_error(call, &name, e)),
        }
    };
    match changes.last() {
        Some(created) => Ok(respond_change(
            call,
            StatusCode::CREATED,
            created,
            &warnings,
        )),
        None => Ok(respond_object(
            call,
            StatusCode::CREATED,
            &Value::Null,
            &warnings,
        )),
    }
}

/// The object's resourceVersion, a precondition when set.
pub fn expected_revision(object: &Value) -> Result<Option<i64>, ApiError> {
    match object["metadata"]["resourceVersion"].as_str() {
        None | Some("") => Ok(None),
        Some(rv) => rv
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))),
    }
}

/// `DeleteOptions`, from the body (JSON, YAML or protobuf) and the query.
struct DeleteOptions {
    dry_run: bool,
    /// The finalizer the propagation policy asks for: `foregroundDeletion` or `orphan`.
    finalizer: Option<&'static str>,
    resource_version: Option<i64>,
    uid: Option<String>,
    /// `gracePeriodSeconds`, from the body or the query.
    grace: Option<i64>,
}

impl DeleteOptions {
    /// What the deletion planner reads of these options.
    fn request(&self) -> super::deletion::Request {
        super::deletion::Request {
            finalizer: self.finalizer,
            grace: self.grace,
        }
    }
}

impl DeleteOptions {
    async fn read(call: &Call<'_>, body: Body) -> Result<DeleteOptions, ApiError> {
        let bytes = body_bytes(body).await?;
        let options: Value = if bytes.is_empty() {
            json!({})
        } else {
            parse_object(&bytes, &content_type(&call.headers))?
        };
        let finalizer = match options["propagationPolicy"]
            .as_str()
            .or(call.q("propagationPolicy"))
        {
            None | Some("Background") => None,
            Some("Foreground") => Some("foregroundDeletion"),
            Some("Orphan") => Some("orphan"),
            Some(policy) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy must be Orphan, Background or Foreground; got {policy:?}"
                )));
            }
        };
        // The deprecated form kubectl no longer sends, still honoured.
        let finalizer = match options["orphanDependents"].as_bool() {
            Some(true) if finalizer.is_none() => Some("orphan"),
            _ => finalizer,
        };
        // kubectl sends dryRun in the body; other clients in the query.
        let in_body: Vec<String> = options["dryRun"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let dry_run = dry_run(call)? | write::dry_run_values(in_body)?;
        let pre = &options["preconditions"];
        let grace = match (
            options["gracePeriodSeconds"].as_i64(),
            call.q("gracePeriodSeconds"),
        ) {
            (Some(grace), _) => Some(grace),
            (None, Some(text)) => Some(text.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "gracePeriodSeconds must be an integer; got {text:?}"
                ))
            })?),
            (None, None) => None,
        };
        Ok(DeleteOptions {
            grace,
            dry_run,
            finalizer,
            resource_version: pre["resourceVersion"].as_str().and_then(|r| r.parse().ok()),
            uid: pre["uid"].as_str().map(str::to_owned),
        })
    }
}

/// The namespaces every cluster has, which Kubernetes refuses to delete.
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Refuses the deletion of a protected namespace (403, as the NamespaceLifecycle admission).
pub(crate) fn check_deletable(kind: &KindInfo, name: &str) -> Result<(), ApiError> {
    if kind.group.is_empty() && kind.kind == "Namespace" && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::forbidden(
            "",
            "namespaces",
            name,
            "this namespace may not be deleted",
        ));
    }
    Ok(())
}

/// Attempts at a DELETE whose object changed between its read and its write (a node agent's
/// status write beside a controller's delete), when the client set no resourceVersion
/// precondition: the apiserver reads again and re-plans, as Kubernetes' does.
const DELETE_ATTEMPTS: usize = 5;

async fn delete(call: &Call<'_>, name: &str, body: Body) -> Result<Response<Body>, ApiError> {
    let options = DeleteOptions::read(call, body).await?;
    let key = call.key(name);
    check_deletable(call.kind, name)?;
    for attempt in 1..=DELETE_ATTEMPTS {
        let stored = fetch(call, &key).await?;
        if let Some(uid) = &options.uid
            && stored.object["metadata"]["uid"].as_str() != Some(uid.as_str())
        {
            return Err(ApiError::conflict(call.kind.group, call.kind.plural, name));
        }
        if let Some(rv) = options.resource_version
            && rv != stored.revision
        {
            return Err(ApiError::conflict(call.kind.group, call.kind.plural, name));
        }
        let expected = Some(stored.revision);
        if is_namespace(call.kind) && !options.dry_run {
            return delete_namespace(call, stored).await;
        }
        let plan = super::deletion::plan(
            call.kind,
            &stored.object,
            &options.request(),
            jiff::Timestamp::now(),
        );
        if options.dry_run {
            let answer = match &plan {
                super::deletion::Plan::Mark(object) => object,
                _ => &stored.object,
            };
            return Ok(respond_object(call, StatusCode::OK, answer, &[]));
        }
        let mut ops = Vec::new();
        match plan {
            super::deletion::Plan::Keep => {
                return Ok(respond_object(call, StatusCode::OK, &stored.object, &[]));
            }
            super::deletion::Plan::Mark(object) => {
                // Finalizers or a pod's node hold the object: mark it, and whoever holds it
                // finishes the job (the garbage collector owns `foregroundDeletion` and
                // `orphan`; a node agent deletes its pod once stopped).
                ops.push(WriteOp::Update {
                    key: key.clone(),
                    object,
                    expected,
                });
            }
            super::deletion::Plan::Remove => {
                ops.extend(
                    deletion_ops(call.state, call.kind, &stored.object)
                        .await
                        .map_err(|e| call.storage_error(e))?,
                );
                ops.push(WriteOp::Delete {
                    key: key.clone(),
                    expected,
                });
            }
        }
        // The object's own change is the last one written.
        match call.state.storage.write(ops).await {
            Ok(changes) => {
                let last = changes
                    .last()
                    .map(|c| (*c.object).clone())
                    .unwrap_or_default();
                return Ok(respond_object(call, StatusCode::OK, &last, &[]));
            }
            Err(crate::storage::StorageError::Conflict { .. })
                if options.resource_version.is_none() && attempt < DELETE_ATTEMPTS =>
            {
                tracing::debug!(object = %name, attempt, "the object changed under a delete; reading it again");
            }
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    Err(ApiError::conflict(call.kind.group, call.kind.plural, name))
}

/// Deletes a namespace with its content, or marks it Terminating while finalizers hold some of
/// it; re-plans when a concurrent write changed what it read.
async fn delete_namespace(call: &Call<'_>, mut stored: Stored) -> Result<Response<Body>, ApiError> {
    let name = stored.object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = call.key(&name);
    for attempt in 1.. {
        let ops = super::namespace::deletion_ops(call.state, &key, &stored)
            .await
            .map_err(|e| call.storage_error(e))?;
        if ops.is_empty() {
            // Already terminating, and nothing moved since.
            return Ok(respond_object(call, StatusCode::OK, &stored.object, &[]));
        }
        match call.state.storage.write(ops).await {
            Ok(changes) => {
                let own = changes
                    .iter()
                    .rev()
                    .find(|c| c.key == key)
                    .map_or_else(|| stored.object.clone(), |c| (*c.object).clone());
                return Ok(respond_object(call, StatusCode::OK, &own, &[]));
            }
            Err(crate::storage::StorageError::Conflict { .. }) if attempt < write::ATTEMPTS => {
                stored = fetch(call, &key).await?;
            }
            Err(e) => return Err(call.storage_error(e)),
        }
    }
    Err(ApiError::conflict("", "namespaces", &name))
}

/// The answer to a deletecollection: the objects it took, at the store's revision now.
async fn collection_answer(call: &Call<'_>, items: Vec<Value>) -> Result<Response<Body>, ApiError> {
    let revision = call
        .state
        .storage
        .revision()
        .await
        .map_err(|e| call.storage_error(e))?;
    let list = json!({
        "kind": format!("{}List", call.kind.kind),
        "apiVersion": call.kind.api_version(),
        "metadata": {"resourceVersion": revision.to_string()},
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &list, &[]))
}

async fn delete_collection(call: &Call<'_>, body: Body) -> Result<Response<Body>, ApiError> {
    let options = DeleteOptions::read(call, body).await?;
    let items = list::select(call, 0, None).await?.items;
    for item in &items {
        check_deletable(
            call.kind,
            item["metadata"]["name"].as_str().unwrap_or_default(),
        )?;
    }
    if is_namespace(call.kind) && !options.dry_run {
        // Each namespace goes with its content, one transaction per namespace.
        for item in &items {
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            if let Some(stored) = call
                .state
                .storage
                .get(&call.key(name))
                .await
                .map_err(|e| call.storage_error(e))?
            {
                delete_namespace(call, stored).await?;
            }
        }
        return collection_answer(call, items).await;
    }
    let now = jiff::Timestamp::now();
    let request = options.request();
    let mut ops: Vec<WriteOp> = Vec::new();
    for o in &items {
        let key = call.key(o["metadata"]["name"].as_str().unwrap_or_default());
        let expected = o["metadata"]["resourceVersion"]
            .as_str()
            .and_then(|r| r.parse().ok());
        match super::deletion::plan(call.kind, o, &request, now) {
            super::deletion::Plan::Keep => {}
            super::deletion::Plan::Mark(object) => ops.push(WriteOp::Update {
                key,
                object,
                expected,
            }),
            super::deletion::Plan::Remove => ops.push(WriteOp::Delete { key, expected }),
        }
    }
    if call.kind.group.is_empty() && call.kind.kind == "Service" {
        for item in &items {
            ops.extend(release_reservations(item));
        }
    }
    if options.dry_run {
        return collection_answer(call, items).await;
    }
    let changes = if ops.is_empty() {
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

/// Who is writing: the `fieldManager` parameter, else the client's name from its User-Agent.
pub fn manager(call: &Call<'_>) -> String {
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
