//! OpenAPI for custom kinds: a v3 document per custom group version (what `kubectl explain`
//! reads, and what tells kubectl that the server validates fields itself), and their
//! definitions in the v2 document (what kubectl validates a `kind: List` with).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::dialect::{Dialect, rewrite};
use super::{gv_key, operation_paths};
use crate::api::crd::{CrdRegistry, CustomKind};

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.";

/// `com.example.v1.Widget`, as kube-apiserver names a custom kind's definition.
fn definition_name(k: &CustomKind) -> String {
    let mut group: Vec<&str> = k.info.group.split('.').collect();
    group.reverse();
    format!("{}.{}.{}", group.join("."), k.info.version, k.info.kind)
}

/// The kind's schema: the CRD's, with apiVersion, kind and metadata as every object has them.
fn schema(k: &CustomKind, prefix: &str, dialect: Dialect) -> Value {
    let mut schema = if k.served.openapi.is_object() {
        k.served.openapi.clone()
    } else {
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
    };
    if let Some(map) = schema.as_object_mut() {
        let properties = map.entry("properties").or_insert_with(|| json!({}));
        properties["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
        properties["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
        properties["metadata"] = json!({"$ref": format!("{prefix}{META}ObjectMeta"), "description": "Standard object's metadata."});
        map.insert(
            "x-kubernetes-group-version-kind".into(),
            json!([{"group": k.info.group, "version": k.info.version, "kind": k.info.kind}]),
        );
    }
    rewrite(&mut schema, dialect);
    schema
}

/// The metadata definitions every document's objects refer to.
fn meta_definitions(from: &Map<String, Value>) -> impl Iterator<Item = (String, Value)> + '_ {
    from.iter()
        .filter(|(name, _)| name.starts_with(META))
        .map(|(name, value)| (name.clone(), value.clone()))
}

/// One v3 document per custom group version.
pub fn documents(crds: &CrdRegistry, core: &Value) -> BTreeMap<String, Value> {
    let empty = Map::new();
    let core_schemas = core["components"]["schemas"].as_object().unwrap_or(&empty);
    let mut docs: BTreeMap<String, Value> = BTreeMap::new();
    for k in crds.all() {
        let key = gv_key(k.info.group, k.info.version);
        let doc = docs.entry(key).or_insert_with(|| {
            json!({
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes (ferry)", "version": "v1.33.0"},
                "paths": {},
                "components": {"schemas": meta_definitions(core_schemas).collect::<Map<_, _>>()},
            })
        });
        for (path, item) in operation_paths(k.info) {
            doc["paths"][path] = item;
        }
        doc["components"]["schemas"][definition_name(&k)] =
            schema(&k, "#/components/schemas/", Dialect::V3);
    }
    docs
}

/// The custom kinds' definitions for the v2 document.
pub fn v2_definitions(crds: &CrdRegistry) -> Map<String, Value> {
    crds.all()
        .iter()
        .map(|k| (definition_name(k), schema(k, "#/definitions/", Dialect::V2)))
        .collect()
}
