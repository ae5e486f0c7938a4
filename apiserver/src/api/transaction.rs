//! ferry's multi-object transaction, `POST /apis/ferry.dev/v1/transactions`: many creates,
//! server-side applies and deletes, admitted one by one and committed as one database
//! transaction (all or nothing, one contiguous range of revisions). The GitOps sync applies a
//! commit through it; `dryRun=All` admits everything and writes nothing.
//!
//! The body is a `Transaction`:
//!
//! ```json
//! {"apiVersion": "ferry.dev/v1", "kind": "Transaction", "operations": [
//!   {"apply":  {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {...}, ...}},
//!   {"create": {"apiVersion": "ferry.dev/v1", "kind": "Revision", ...}},
//!   {"delete": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "demo", "name": "old",
//!               "resourceVersion": "12"}}]}
//! ```
//!
//! `apply` is server-side apply by `fieldManager` with `force` (the repository is the source of
//! truth): it creates the object or takes the fields it sets, and removes the fields it set
//! before and no longer sets. Namespaces are written first, deletes last; an object may live in
//! a namespace the same transaction creates. A deleted Namespace takes its contents with it.
//!
//! Every operation is admitted before anything is written, and every refusal is reported at
//! once: a 422 whose causes name the operation (`operations[3]`), the object and the field. The
//! answer lists, per operation, what happened (`created`, `updated`, `unchanged`, `deleted`)
//! and the object's new `resourceVersion`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Response, StatusCode};
use ferry_schema::kinds::{self, KindInfo};
use ferry_schema::structural::{CrdVersion, served_versions};
use serde_json::{Value, json};

use super::admission::{FieldValidation, ObjectAt, UpdateHow};
use super::catalog::storage_resource;
use super::crd::CustomKind;
use super::request::{json_response, parse_object};
use super::status::{ApiError, Cause};
use super::{ApiState, allocator, apply, resource};
use crate::storage::{ObjectKey, StorageError, Stored, WriteOp};

/// The largest transaction body: a commit of many objects is one request.
pub const MAX_TRANSACTION_BODY: usize = 256 * 1024 * 1024;

/// The path the transaction is served at.
pub const PATH: &str = "/apis/ferry.dev/v1/transactions";

/// How many times a transaction is retried when an automatically picked ClusterIP or NodePort
/// was taken meanwhile, or an object changed between admission and commit.
const ATTEMPTS: usize = 8;

/// What one operation asks for.
#[derive(Debug, Clone)]
enum Verb {
    Apply,
    Create,
    Delete,
}

/// One admitted operation, ready to write.
struct Planned {
    index: usize,
    kind: &'static KindInfo,
    key: ObjectKey,
    action: &'static str,
    /// The object's new resourceVersion, once written.
    resource_version: Option<String>,
    ops: Vec<WriteOp>,
}

/// Serves a transaction request.
pub async fn handle(
    state: &ApiState,
    query: &std::collections::HashMap<String, String>,
    media_type: &str,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_TRANSACTION_BODY)
        .await
        .map_err(|_| ApiError::too_large(MAX_TRANSACTION_BODY))?;
    let request = parse_object(&bytes, media_type)?;
    // A big transaction is held once (as objects), not twice.
    drop(bytes);
    let manager = query
        .get("fieldManager")
        .filter(|m| !m.is_empty())
        .cloned()
        .unwrap_or_else(|| "ferry".to_owned());
    let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
    let operations = parse(request)?;
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let planned = admit_all(state, &operations, &manager).await?;
        if dry_run {
            return Ok(answer(&planned, None));
        }
        let mut planned = planned;
        let ops: Vec<WriteOp> = planned
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.ops))
            .collect();
        if ops.is_empty() {
            return Ok(answer(&planned, None));
        }
        match state.storage.write(ops).await {
            Ok(changes) => {
                let written: std::collections::HashMap<&ObjectKey, i64> =
                    changes.iter().map(|c| (&c.key, c.revision)).collect();
                for p in &mut planned {
                    if p.action != "deleted" {
                        p.resource_version = written.get(&p.key).map(i64::to_string);
                    }
                }
                let revision = changes.last().map(|c| c.revision);
                return Ok(answer(&planned, revision));
            }
            // Raced with another writer: admit again against the new state.
            Err(e @ (StorageError::Conflict { .. } | StorageError::AlreadyExists(_))) => {
                if let StorageError::AlreadyExists(key) = &e
                    && !allocator::is_reservation(key)
                {
                    return Err(storage_error(e));
                }
                last_error = Some(e);
            }
            Err(e) => return Err(storage_error(e)),
        }
    }
    Err(storage_error(last_error.unwrap_or_else(|| {
        StorageError::Unavailable("the transaction kept conflicting".into())
    })))
}

fn storage_error(error: StorageError) -> ApiError {
    match error {
        StorageError::NotFound(key) if key.resource == "namespaces" => {
            ApiError::not_found("", "namespaces", &key.name)
        }
        other => {
            let resource = match &other {
                StorageError::NotFound(k)
                | StorageError::AlreadyExists(k)
                | StorageError::Conflict { key: k, .. } => k.resource.clone(),
                _ => String::new(),
            };
            ApiError::from_storage(other, "", &resource)
        }
    }
}

/// The operations of a request body, in order (taken out of it, not copied).
fn parse(mut request: Value) -> Result<Vec<(Verb, Value)>, ApiError> {
    if request["kind"].as_str() != Some("Transaction") {
        return Err(ApiError::bad_request(
            "the body must be a ferry.dev/v1 Transaction",
        ));
    }
    let Value::Array(list) = request["operations"].take() else {
        return Err(ApiError::bad_request(
            "a Transaction needs a list of operations",
        ));
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, op) in list.into_iter().enumerate() {
        let parsed = match op {
            Value::Object(map) if map.len() == 1 => {
                map.into_iter().next().and_then(|(verb, body)| {
                    let verb = match verb.as_str() {
                        "apply" => Verb::Apply,
                        "create" => Verb::Create,
                        "delete" => Verb::Delete,
                        _ => return None,
                    };
                    body.is_object().then_some((verb, body))
                })
            }
            _ => None,
        };
        match parsed {
            Some(p) => out.push(p),
            None => {
                return Err(ApiError::bad_request(format!(
                    "operations[{i}] must be one of {{\"apply\": object}}, {{\"create\": object}}, {{\"delete\": reference}}"
                )));
            }
        }
    }
    Ok(out)
}

/// `Kind namespace/name` of an object or reference.
fn describe(kind: &str, namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        format!("{kind} {name}")
    } else {
        format!("{kind} {namespace}/{name}")
    }
}

/// Admits every operation; all refusals are gathered into one 422.
async fn admit_all(
    state: &ApiState,
    operations: &[(Verb, Value)],
    manager: &str,
) -> Result<Vec<Planned>, ApiError> {
    // Namespaces first, then CRDs (their kinds may follow), deletes last, the rest in the
    // given order.
    let mut order: Vec<usize> = (0..operations.len()).collect();
    order.sort_by_key(|&i| match &operations[i] {
        (Verb::Delete, _) => 3,
        (_, object) if object["kind"] == "Namespace" && object["apiVersion"] == "v1" => 0,
        (_, object) if object["kind"] == "CustomResourceDefinition" => 1,
        _ => 2,
    });
    let pending = pending_kinds(state, operations);
    let kinds = Kinds {
        state,
        pending: &pending,
    };
    let created_namespaces: HashSet<String> = operations
        .iter()
        .filter(|(verb, o)| {
            !matches!(verb, Verb::Delete) && o["kind"] == "Namespace" && o["apiVersion"] == "v1"
        })
        .filter_map(|(_, o)| o["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let mut planned = Vec::with_capacity(operations.len());
    let mut causes: Vec<Cause> = Vec::new();
    let mut first_error: Option<ApiError> = None;
    let mut reserved: HashSet<ObjectKey> = HashSet::new();
    // Every object the transaction touches, read in a few statements.
    let keys: Vec<ObjectKey> = operations
        .iter()
        .filter_map(|(verb, body)| target(&kinds, verb, body).ok().map(|(_, key)| key))
        .collect();
    let mut stored = state
        .storage
        .get_many(&keys)
        .await
        .map_err(|e| ApiError::from_storage(e, "", "objects"))?;
    for i in order {
        let (verb, body) = &operations[i];
        let context = Context {
            manager,
            created_namespaces: &created_namespaces,
            kinds: &kinds,
        };
        match admit_one(state, i, (verb, body), context, &mut stored, &mut reserved).await {
            Ok(p) => planned.push(p),
            Err(error) => {
                let what = describe(
                    body["kind"].as_str().unwrap_or("?"),
                    body["metadata"]["namespace"]
                        .as_str()
                        .or(body["namespace"].as_str())
                        .unwrap_or_default(),
                    body["metadata"]["name"]
                        .as_str()
                        .or(body["name"].as_str())
                        .unwrap_or_default(),
                );
                let listed = error
                    .details
                    .as_ref()
                    .and_then(|d| d["causes"].as_array())
                    .cloned()
                    .unwrap_or_default();
                if listed.is_empty() {
                    causes.push(Cause {
                        reason: error.reason,
                        field: format!("operations[{i}]"),
                        message: format!("{what}: {}", error.message),
                    });
                } else {
                    for c in listed {
                        let field = c["field"].as_str().unwrap_or_default();
                        causes.push(Cause {
                            reason: "FieldValueInvalid",
                            field: if field.is_empty() {
                                format!("operations[{i}]")
                            } else {
                                format!("operations[{i}].{field}")
                            },
                            message: format!(
                                "{what}: {}",
                                c["message"].as_str().unwrap_or_default()
                            ),
                        });
                    }
                }
                if first_error.is_none() {
                    first_error = Some(error);
                }
            }
        }
    }
    if let Some(first) = first_error {
        let mut error = ApiError::invalid("ferry.dev", "Transaction", "", Vec::new());
        // A lone refusal keeps its own code (404 for a missing namespace, 409 for a conflict).
        if causes.len() == 1 {
            error.code = first.code;
            error.reason = first.reason;
        }
        error.message = format!(
            "the transaction was refused, nothing was written: {}",
            causes
                .iter()
                .map(|c| c.message.clone())
                .collect::<Vec<_>>()
                .join("; ")
        );
        error.details = Some(json!({
            "group": "ferry.dev",
            "kind": "transactions",
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "field": c.field, "message": c.message})).collect::<Vec<_>>(),
        }));
        return Err(error);
    }
    Ok(planned)
}

/// The custom kinds the transaction's own CRDs define (not served until it commits).
fn pending_kinds(state: &ApiState, operations: &[(Verb, Value)]) -> Vec<CustomKind> {
    operations
        .iter()
        .filter(|(verb, o)| {
            !matches!(verb, Verb::Delete)
                && o["kind"] == "CustomResourceDefinition"
                && o["apiVersion"] == "apiextensions.k8s.io/v1"
        })
        .flat_map(|(_, crd)| served_versions(crd).unwrap_or_default())
        .map(|v| CustomKind {
            info: state.admission.crds().info(&v),
            served: Arc::new(v),
        })
        .collect()
}

/// The kinds a transaction can address: built-in, served custom kinds, and those its own CRDs
/// define.
struct Kinds<'a> {
    state: &'a ApiState,
    pending: &'a [CustomKind],
}

impl Kinds<'_> {
    fn find(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Option<(&'static KindInfo, Option<Arc<CrdVersion>>)> {
        if let Some(info) = kinds::find(api_version, kind) {
            return Some((info, None));
        }
        self.state
            .admission
            .crds()
            .find_kind(api_version, kind)
            .or_else(|| {
                self.pending
                    .iter()
                    .find(|k| k.info.api_version() == api_version && k.info.kind == kind)
                    .cloned()
            })
            .map(|k| (k.info, Some(k.served)))
    }
}

/// The kind and storage key an operation addresses.
fn target(
    kinds: &Kinds<'_>,
    verb: &Verb,
    body: &Value,
) -> Result<(&'static KindInfo, ObjectKey), ApiError> {
    let api_version = body["apiVersion"].as_str().unwrap_or_default();
    let kind_name = body["kind"].as_str().unwrap_or_default();
    let (kind, _) = kinds.find(api_version, kind_name).ok_or_else(|| {
        let custom = api_version.contains('.');
        ApiError::bad_request(if custom {
            format!(
                "no kind {kind_name:?} in {api_version:?} is served here: no CustomResourceDefinition in the cluster or in this commit defines it"
            )
        } else {
            format!("no kind {kind_name:?} in {api_version:?} is served here")
        })
    })?;
    let (namespace, name) = match verb {
        Verb::Delete => (
            body["namespace"].as_str().unwrap_or_default(),
            body["name"].as_str().unwrap_or_default(),
        ),
        _ => (
            body["metadata"]["namespace"].as_str().unwrap_or_default(),
            body["metadata"]["name"].as_str().unwrap_or_default(),
        ),
    };
    if kind.namespaced && namespace.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{kind_name} {name} is namespaced and needs a namespace"
        )));
    }
    let namespace = if kind.namespaced { namespace } else { "" };
    Ok((
        kind,
        ObjectKey::new(storage_resource(kind), namespace, name),
    ))
}

/// What every operation of a transaction shares.
#[derive(Clone, Copy)]
struct Context<'a> {
    manager: &'a str,
    created_namespaces: &'a HashSet<String>,
    kinds: &'a Kinds<'a>,
}

/// Admits one operation against the stored state (`stored`: the objects read up front).
async fn admit_one(
    state: &ApiState,
    index: usize,
    (verb, body): (&Verb, &Value),
    context: Context<'_>,
    stored: &mut HashMap<ObjectKey, Stored>,
    reserved: &mut HashSet<ObjectKey>,
) -> Result<Planned, ApiError> {
    let Context {
        manager,
        created_namespaces,
        kinds,
    } = context;
    let (kind, key) = target(kinds, verb, body)?;
    let custom = kinds
        .find(&kind.api_version(), kind.kind)
        .and_then(|(_, custom)| custom);
    let (namespace, name) = (key.namespace.clone(), key.name.clone());
    let (namespace, name) = (namespace.as_str(), name.as_str());
    let stored = stored.remove(&key);
    let ns_arg = kind.namespaced.then_some(namespace);
    let mut ops = Vec::new();
    let needs_namespace = kind.namespaced && !created_namespaces.contains(namespace);
    let fv = FieldValidation::Strict;
    let action = match (verb, stored) {
        (Verb::Delete, None) => {
            return Err(ApiError::not_found(kind.group, kind.plural, name));
        }
        (Verb::Delete, Some(stored)) => {
            resource::check_deletable(kind, name)?;
            if let Some(rv) = body["resourceVersion"].as_str()
                && rv != stored.revision.to_string()
            {
                return Err(ApiError::conflict(kind.group, kind.plural, name));
            }
            if resource::is_namespace(kind) {
                ops.extend(
                    super::namespace::deletion_ops(state, &key, &stored)
                        .await
                        .map_err(|e| ApiError::from_storage(e, kind.group, kind.plural))?,
                );
            } else {
                ops.extend(
                    resource::deletion_ops(state, kind, &stored.object)
                        .await
                        .map_err(|e| ApiError::from_storage(e, kind.group, kind.plural))?,
                );
                ops.push(WriteOp::Delete {
                    key: key.clone(),
                    expected: Some(stored.revision),
                });
            }
            "deleted"
        }
        (Verb::Create, Some(_)) => {
            return Err(ApiError::already_exists(kind.group, kind.plural, name));
        }
        (verb @ (Verb::Create | Verb::Apply), None) => {
            let mut object = if matches!(verb, Verb::Create) {
                let (mut object, _) =
                    state
                        .admission
                        .create_as(kind, custom.clone(), ns_arg, body.clone(), fv)?;
                apply::record_update(None, &mut object, manager);
                object
            } else {
                let object =
                    apply::apply(None, body, manager, true, (kind.group, kind.plural, name))?;
                state
                    .admission
                    .create_as(kind, custom.clone(), ns_arg, object, fv)?
                    .0
            };
            if needs_namespace {
                ops.push(namespace_required(namespace));
            }
            if kind.group.is_empty() && kind.kind == "Service" {
                ops.extend(allocate(state, name, &mut object, reserved).await?);
            }
            ops.push(WriteOp::Create {
                key: key.clone(),
                object,
            });
            "created"
        }
        (Verb::Apply, Some(stored)) => {
            let object = apply::apply(
                Some(&stored.object),
                body,
                manager,
                true,
                (kind.group, kind.plural, name),
            )?;
            let at = ObjectAt {
                namespace: ns_arg,
                name,
            };
            let how = UpdateHow {
                status_only: false,
                field_validation: fv,
            };
            let (object, _) = state
                .admission
                .update(kind, at, &stored.object, object, how)?;
            if same_content(&stored.object, &object) {
                "unchanged"
            } else {
                ops.push(WriteOp::Update {
                    key: key.clone(),
                    object,
                    expected: Some(stored.revision),
                });
                "updated"
            }
        }
    };
    Ok(Planned {
        index,
        kind,
        key,
        action,
        resource_version: None,
        ops,
    })
}

/// A new Service's ClusterIP and NodePorts; a value the manifest asks for that another
/// Service holds is refused now (not at commit), so a dry run finds it.
async fn allocate(
    state: &ApiState,
    name: &str,
    service: &mut Value,
    reserved: &mut HashSet<ObjectKey>,
) -> Result<Vec<WriteOp>, ApiError> {
    let explicit = allocator::reservations(service);
    for key in &explicit {
        let taken = state
            .storage
            .get(key)
            .await
            .map_err(|e| ApiError::from_storage(e, "", "services"))?;
        if taken.is_some() || reserved.contains(key) {
            return Err(allocated(name, key));
        }
    }
    let original = service.clone();
    for _ in 0..ATTEMPTS {
        let mut candidate = original.clone();
        let ops = allocator::allocate(&state.ranges, &mut candidate)?;
        if ops.iter().any(|op| reserved.contains(op.key())) {
            continue;
        }
        reserved.extend(ops.iter().map(|op| op.key().clone()));
        *service = candidate;
        return Ok(ops);
    }
    Err(ApiError::internal(
        "no free ClusterIP or NodePort was found",
    ))
}

/// 422: a ClusterIP or NodePort is already allocated.
fn allocated(name: &str, key: &ObjectKey) -> ApiError {
    let field = if key.resource == allocator::CLUSTER_IPS {
        "spec.clusterIP"
    } else {
        "spec.ports.nodePort"
    };
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("{} is already allocated", key.name),
        }],
    )
}

fn namespace_required(namespace: &str) -> WriteOp {
    WriteOp::Require {
        key: ObjectKey::new("namespaces", "", namespace),
    }
}

/// Whether two forms of an object differ only in bookkeeping (field-ownership times and the
/// resourceVersion), so that re-applying an unchanged manifest writes nothing.
fn same_content(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
            if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
                for e in entries {
                    if let Some(e) = e.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}

/// The answer: what happened to each operation, in request order.
fn answer(planned: &[Planned], revision: Option<i64>) -> Response<Body> {
    let mut sorted: Vec<&Planned> = planned.iter().collect();
    sorted.sort_by_key(|p| p.index);
    let results: Vec<Value> = sorted
        .iter()
        .map(|p| {
            let mut r = json!({
                "action": p.action,
                "apiVersion": p.kind.api_version(),
                "kind": p.kind.kind,
                "name": p.key.name,
            });
            if !p.key.namespace.is_empty() {
                r["namespace"] = json!(p.key.namespace);
            }
            if let Some(rv) = &p.resource_version {
                r["resourceVersion"] = json!(rv);
            }
            r
        })
        .collect();
    let mut status = json!({"results": results});
    if let Some(revision) = revision {
        status["revision"] = json!(revision.to_string());
    }
    json_response(
        StatusCode::OK,
        &json!({"apiVersion": "ferry.dev/v1", "kind": "Transaction", "status": status}),
        &[],
    )
}
