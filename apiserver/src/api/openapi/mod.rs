//! OpenAPI documents, built once from the generated JSON Schemas: `/openapi/v3` (an index of
//! group versions) and `/openapi/v3/{api/v1,apis/G/V}` (paths and component schemas), and
//! `/openapi/v2`. kubectl reads the v3 documents to learn that the server validates fields
//! itself (the `fieldValidation` parameter on each kind's POST, PUT and PATCH operations).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ferry_schema::generate::{Flavour, kind_schema};
use ferry_schema::kinds::{KINDS, KindInfo};
use serde_json::{Map, Value, json};

use super::catalog::{groups, kinds_in};

mod custom;
mod dialect;
pub mod v2proto;

use super::crd::CrdRegistry;

use dialect::{Dialect, rewrite};

fn replace_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "$ref"
                    && let Value::String(s) = v
                    && let Some(rest) = s.strip_prefix(from)
                {
                    *s = format!("{to}{rest}");
                } else {
                    replace_refs(v, from, to);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| replace_refs(v, from, to)),
        _ => {}
    }
}

/// Every kind's schema and its definitions, keyed by definition name, refs pointing at `prefix`,
/// in the OpenAPI `dialect`.
fn schemas<'a>(
    kinds: impl Iterator<Item = &'a KindInfo>,
    prefix: &str,
    dialect: Dialect,
) -> Map<String, Value> {
    let mut out = Map::new();
    for kind in kinds {
        let mut schema = kind_schema(kind, Flavour::Normal);
        replace_refs(&mut schema, "#/$defs/", prefix);
        if let Some(Value::Object(defs)) = schema.as_object_mut().and_then(|s| s.remove("$defs")) {
            out.extend(defs);
        }
        if let Some(map) = schema.as_object_mut() {
            map.remove("$schema");
        }
        out.insert((kind.definition)().into_owned(), schema);
    }
    for schema in out.values_mut() {
        rewrite(schema, dialect);
    }
    out
}

fn operation(kind: &KindInfo, verb: &str, with_validation: bool) -> Value {
    let mut parameters =
        vec![json!({"name": "dryRun", "in": "query", "schema": {"type": "string"}})];
    if with_validation {
        parameters
            .push(json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}));
        parameters
            .push(json!({"name": "fieldManager", "in": "query", "schema": {"type": "string"}}));
    }
    json!({
        "operationId": format!("{verb}{}", kind.kind),
        "parameters": parameters,
        "responses": {"200": {"description": "OK"}},
        "x-kubernetes-action": verb,
        "x-kubernetes-group-version-kind": {"group": kind.group, "version": kind.version, "kind": kind.kind},
    })
}

/// A kind's collection and object paths with their operations.
fn operation_paths(kind: &KindInfo) -> Vec<(String, Value)> {
    let base = if kind.group.is_empty() {
        format!("/api/{}", kind.version)
    } else {
        format!("/apis/{}/{}", kind.group, kind.version)
    };
    let collection = if kind.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", kind.plural)
    } else {
        format!("{base}/{}", kind.plural)
    };
    vec![
        (
            collection.clone(),
            json!({"get": operation(kind, "list", false), "post": operation(kind, "post", true), "delete": operation(kind, "deletecollection", false)}),
        ),
        (
            format!("{collection}/{{name}}"),
            json!({
                "get": operation(kind, "get", false),
                "put": operation(kind, "put", true),
                "patch": operation(kind, "patch", true),
                "delete": operation(kind, "delete", false),
            }),
        ),
    ]
}

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn documents() -> &'static BTreeMap<String, Value> {
    static DOCS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        let mut gvs = vec![(String::new(), "v1".to_owned())];
        gvs.extend(groups().into_iter().map(|(g, v)| (g.to_owned(), v.to_owned())));
        gvs.into_iter()
            .map(|(group, version)| {
                let mut doc_paths = Map::new();
                for kind in kinds_in(&group, &version) {
                    doc_paths.extend(operation_paths(kind));
                }
                let doc = json!({
                    "openapi": "3.0.0",
                    "info": {"title": "Kubernetes (ferry)", "version": "v1.33.0"},
                    "paths": doc_paths,
                    "components": {"schemas": schemas(kinds_in(&group, &version), "#/components/schemas/", Dialect::V3)},
                });
                (gv_key(&group, &version), doc)
            })
            .collect()
    })
}

fn hash(value: &Value) -> String {
    // FNV-1a: a stable content hash for the cache-busting `hash` parameter.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in value.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

/// `/openapi/v3`: the index of group-version documents.
pub fn v3_root(crds: &CrdRegistry) -> Value {
    let custom = custom_documents(crds);
    let paths: Map<String, Value> = documents()
        .iter()
        .chain(custom.iter())
        .map(|(key, doc)| {
            (
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(doc))}),
            )
        })
        .collect();
    json!({"paths": paths})
}

fn custom_documents(crds: &CrdRegistry) -> BTreeMap<String, Value> {
    match documents().get("api/v1") {
        Some(core) => custom::documents(crds, core),
        None => BTreeMap::new(),
    }
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`.
pub fn v3(group: &str, version: &str, crds: &CrdRegistry) -> Option<Value> {
    let key = gv_key(group, version);
    documents()
        .get(&key)
        .cloned()
        .or_else(|| custom_documents(crds).remove(&key))
}

/// `/openapi/v2` as protobuf ([`v2proto`]): encoded once for the built-in kinds, afresh when
/// CRDs add theirs.
pub fn v2_protobuf(crds: &CrdRegistry) -> Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let custom = custom::v2_definitions(crds);
    if custom.is_empty() {
        return BYTES
            .get_or_init(|| v2proto::encode(&built_in_v2()))
            .clone();
    }
    v2proto::encode(&v2(crds))
}

/// `/openapi/v2`: every kind's schema as Swagger 2.0 definitions.
pub fn v2(crds: &CrdRegistry) -> Value {
    let mut doc = built_in_v2();
    for (name, definition) in custom::v2_definitions(crds) {
        doc["definitions"][name] = definition;
    }
    doc
}

fn built_in_v2() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc_paths = Map::new();
        for kind in KINDS {
            doc_paths.extend(operation_paths(kind));
        }
        json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes (ferry)", "version": "v1.33.0"},
            "paths": doc_paths,
            "definitions": schemas(KINDS.iter(), "#/definitions/", Dialect::V2),
        })
    })
    .clone()
}
