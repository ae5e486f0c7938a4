//! CustomResourceDefinitions: what one defines (the served versions of a kind, with their
//! structural schemas, subresources and printer columns), and what a structural schema does to
//! a custom resource as the kube-apiserver does it: unknown fields pruned (unless
//! `x-kubernetes-preserve-unknown-fields`), `default`s filled in, then validation, with
//! messages in Kubernetes' wording (`spec.replicas: Invalid value: "x": spec.replicas in body
//! must be of type integer: "string"`).

use serde_json::{Map, Value, json};

use crate::pointer::JsonPointer;

/// Why a CRD cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdError {
    /// A field the CRD must have.
    #[error("{0}: Required value")]
    Missing(&'static str),
    /// The schema does not compile.
    #[error("spec.versions[{version}].schema.openAPIV3Schema: Invalid value: {message}")]
    Schema {
        /// Which version.
        version: String,
        /// The compiler's message.
        message: String,
    },
    /// The name is not `plural.group`.
    #[error("metadata.name: Invalid value: {0:?}: must be spec.names.plural+\".\"+spec.group")]
    Name(String),
    /// Not exactly one storage version.
    #[error(
        "spec.versions: Invalid value: must have exactly one version marked as storage version"
    )]
    StorageVersions,
}

/// The `scale` subresource's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// `.spec.replicas`.
    pub spec_replicas: String,
    /// `.status.replicas`.
    pub status_replicas: String,
    /// `.status.selector`, if any.
    pub label_selector: Option<String>,
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Column title.
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `date`.
    pub type_: String,
    /// A simple JSONPath (`.spec.replicas`).
    pub json_path: String,
    /// 0 normal, more for `-o wide`.
    pub priority: i64,
}

/// One served version of a custom kind.
#[derive(Debug)]
pub struct CrdVersion {
    /// The CRD's name (`widgets.example.com`).
    pub crd: String,
    /// API group.
    pub group: String,
    /// This version (`v1`).
    pub version: String,
    /// `Widget`.
    pub kind: String,
    /// `WidgetList`.
    pub list_kind: String,
    /// `widgets`.
    pub plural: String,
    /// `widget`.
    pub singular: String,
    /// Short names.
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Whether it is the storage version.
    pub storage: bool,
    /// The structural schema, if the version has one.
    pub schema: Option<Structural>,
    /// The OpenAPI v3 schema as written.
    pub openapi: Value,
    /// A `status` subresource.
    pub status: bool,
    /// A `scale` subresource.
    pub scale: Option<ScalePaths>,
    /// Printer columns (besides NAME and AGE).
    pub columns: Vec<PrinterColumn>,
}

impl CrdVersion {
    /// `group/version`.
    pub fn api_version(&self) -> String {
        format!("{}/{}", self.group, self.version)
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The served versions a CRD defines (checked: name, names, one storage version, schemas
/// that compile).
pub fn served_versions(crd: &Value) -> Result<Vec<CrdVersion>, CrdError> {
    let spec = &crd["spec"];
    let group = spec["group"]
        .as_str()
        .ok_or(CrdError::Missing("spec.group"))?;
    let names = &spec["names"];
    let plural = names["plural"]
        .as_str()
        .ok_or(CrdError::Missing("spec.names.plural"))?;
    let kind = names["kind"]
        .as_str()
        .ok_or(CrdError::Missing("spec.names.kind"))?;
    let name = text(&crd["metadata"]["name"]);
    if name != format!("{plural}.{group}") {
        return Err(CrdError::Name(name));
    }
    let versions = spec["versions"]
        .as_array()
        .filter(|v| !v.is_empty())
        .ok_or(CrdError::Missing("spec.versions"))?;
    if versions
        .iter()
        .filter(|v| v["storage"] == json!(true))
        .count()
        != 1
    {
        return Err(CrdError::StorageVersions);
    }
    let mut out = Vec::new();
    for v in versions {
        if v["served"] == json!(false) {
            continue;
        }
        let version = text(&v["name"]);
        let openapi = v["schema"]["openAPIV3Schema"].clone();
        let schema = if openapi.is_object() {
            Some(
                Structural::new(&openapi).map_err(|message| CrdError::Schema {
                    version: version.clone(),
                    message,
                })?,
            )
        } else {
            None
        };
        let subresources = &v["subresources"];
        let scale = subresources["scale"].as_object().map(|s| ScalePaths {
            spec_replicas: s
                .get("specReplicasPath")
                .map(text)
                .unwrap_or_else(|| ".spec.replicas".into()),
            status_replicas: s
                .get("statusReplicasPath")
                .map(text)
                .unwrap_or_else(|| ".status.replicas".into()),
            label_selector: s.get("labelSelectorPath").map(text),
        });
        let columns = v["additionalPrinterColumns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| PrinterColumn {
                name: text(&c["name"]),
                type_: text(&c["type"]),
                json_path: text(&c["jsonPath"]),
                priority: c["priority"].as_i64().unwrap_or(0),
            })
            .collect();
        out.push(CrdVersion {
            crd: name.clone(),
            group: group.to_owned(),
            version,
            kind: kind.to_owned(),
            list_kind: names["listKind"]
                .as_str()
                .map_or_else(|| format!("{kind}List"), str::to_owned),
            plural: plural.to_owned(),
            singular: names["singular"]
                .as_str()
                .map_or_else(|| kind.to_ascii_lowercase(), str::to_owned),
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced: spec["scope"] != "Cluster",
            storage: v["storage"] == json!(true),
            schema,
            openapi,
            status: subresources["status"].is_object(),
            scale,
            columns,
        });
    }
    Ok(out)
}

/// A compiled structural schema.
#[derive(Debug)]
pub struct Structural {
    openapi: Value,
    validator: jsonschema::Validator,
}

/// One validation failure: where (a JSON pointer) and what, in Kubernetes' words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The JSON pointer of the field.
    pub pointer: String,
    /// `Invalid value: ...`, `Required value`, `Unsupported value: ...`.
    pub message: String,
    /// The StatusCause reason (`FieldValueInvalid`, `FieldValueRequired`, ...).
    pub reason: &'static str,
}

impl Structural {
    /// Compiles an `openAPIV3Schema`.
    pub fn new(openapi: &Value) -> Result<Structural, String> {
        let mut schema = openapi.clone();
        to_json_schema(&mut schema, true);
        let validator = jsonschema::validator_for(&schema).map_err(|e| e.to_string())?;
        Ok(Structural {
            openapi: openapi.clone(),
            validator,
        })
    }

    /// The schema as written.
    pub fn openapi(&self) -> &Value {
        &self.openapi
    }

    /// Drops fields the schema does not know (keeping `apiVersion`, `kind`, `metadata` at the
    /// root); returns the pointers of what was dropped.
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut dropped = Vec::new();
        prune(
            object,
            &self.openapi,
            &JsonPointer::root(),
            true,
            &mut dropped,
        );
        dropped
    }

    /// Fills in `default`s of absent properties of objects that are present.
    pub fn default(&self, object: &mut Value) {
        default(object, &self.openapi);
    }

    /// Validates (the object's metadata aside).
    pub fn validate(&self, object: &Value) -> Vec<Failure> {
        let mut subject = object.clone();
        if let Some(map) = subject.as_object_mut() {
            map.remove("metadata");
        }
        self.validator
            .iter_errors(&subject)
            .map(|e| failure(&e, &subject))
            .collect()
    }
}

/// `spec.replicas` from `/spec/replicas`.
fn dotted(pointer: &str) -> String {
    let mut out = String::new();
    for segment in crate::pointer::segments(pointer) {
        if !segment.is_empty() && segment.chars().all(|c| c.is_ascii_digit()) {
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

fn failure(error: &jsonschema::ValidationError<'_>, subject: &Value) -> Failure {
    use jsonschema::error::ValidationErrorKind as K;
    let pointer = error.instance_path().to_string();
    let field = dotted(&pointer);
    let value = subject.pointer(&pointer).cloned().unwrap_or(Value::Null);
    let (message, reason) = match error.kind() {
        K::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let at = if field.is_empty() {
                name.to_owned()
            } else {
                format!("{field}.{name}")
            };
            return Failure {
                pointer: format!("{pointer}/{name}"),
                message: format!("Required value: {at} in body is required"),
                reason: "FieldValueRequired",
            };
        }
        K::Enum { options } => {
            let supported: Vec<String> = options
                .as_array()
                .into_iter()
                .flatten()
                .map(Value::to_string)
                .collect();
            (
                format!(
                    "Unsupported value: {value}: supported values: {}",
                    supported.join(", ")
                ),
                "FieldValueNotSupported",
            )
        }
        K::Type { .. } => (
            format!(
                "Invalid value: {value}: {field} in body must be of type {}: \"{}\"",
                expected_type(error),
                json_type(&value)
            ),
            "FieldValueTypeInvalid",
        ),
        K::Minimum { limit } => (
            format!(
                "Invalid value: {value}: {field} in body should be greater than or equal to {limit}"
            ),
            "FieldValueInvalid",
        ),
        K::Maximum { limit } => (
            format!(
                "Invalid value: {value}: {field} in body should be less than or equal to {limit}"
            ),
            "FieldValueInvalid",
        ),
        K::MinLength { limit } => (
            format!(
                "Invalid value: {value}: {field} in body should be at least {limit} chars long"
            ),
            "FieldValueInvalid",
        ),
        K::MaxLength { limit } => (
            format!("Too long: may not be more than {limit} bytes"),
            "FieldValueTooLong",
        ),
        K::Pattern { pattern } => (
            format!("Invalid value: {value}: {field} in body should match '{pattern}'"),
            "FieldValueInvalid",
        ),
        _ => (
            format!("Invalid value: {value}: {error}"),
            "FieldValueInvalid",
        ),
    };
    Failure {
        pointer,
        message,
        reason,
    }
}

fn expected_type(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    match error.kind() {
        K::Type {
            kind: TypeKind::Single(t),
        } => t.to_string(),
        K::Type {
            kind: TypeKind::Multiple(types),
        } => types
            .into_iter()
            .map(|t| t.to_string())
            .filter(|t| t != "null")
            .collect::<Vec<_>>()
            .join(","),
        _ => String::new(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// OpenAPI v3 (structural) to JSON Schema: `nullable`, int-or-string, and the root's metadata
/// left to the apiserver.
fn to_json_schema(schema: &mut Value, root: bool) {
    let Value::Object(map) = schema else {
        return;
    };
    if root && let Some(Value::Object(properties)) = map.get_mut("properties") {
        properties.remove("metadata");
    }
    if map.remove("x-kubernetes-int-or-string") == Some(json!(true)) {
        map.remove("type");
        map.insert(
            "anyOf".into(),
            json!([{"type": "integer"}, {"type": "string"}]),
        );
    }
    if map.remove("nullable") == Some(json!(true))
        && let Some(Value::String(ty)) = map.get("type").cloned()
    {
        map.insert("type".into(), json!([ty, "null"]));
    }
    for key in ["properties", "patternProperties"] {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            for child in children.values_mut() {
                to_json_schema(child, false);
            }
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(child) = map.get_mut(key) {
            to_json_schema(child, false);
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(parts)) = map.get_mut(key) {
            for part in parts {
                to_json_schema(part, false);
            }
        }
    }
}

fn preserves(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == json!(true)
}

fn prune(
    value: &mut Value,
    schema: &Value,
    at: &JsonPointer,
    root: bool,
    dropped: &mut Vec<String>,
) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                let keep = |key: &str| {
                    properties.contains_key(key)
                        || (root && matches!(key, "apiVersion" | "kind" | "metadata"))
                };
                if !preserves(schema) {
                    let unknown: Vec<String> = map.keys().filter(|k| !keep(k)).cloned().collect();
                    for key in unknown {
                        map.remove(&key);
                        dropped.push(at.join(&key).to_string());
                    }
                }
                for (key, child) in map.iter_mut() {
                    if let Some(child_schema) = properties.get(key) {
                        prune(child, child_schema, &at.join(key), false, dropped);
                    }
                }
            } else if let Some(inner) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for (key, child) in map.iter_mut() {
                    prune(child, inner, &at.join(key), false, dropped);
                }
            } else if !preserves(schema)
                && schema.get("additionalProperties") != Some(&json!(true))
                && !root
                && schema["type"] == "object"
            {
                // An object schema with no properties and no preserve: everything is unknown.
                let unknown: Vec<String> = map.keys().cloned().collect();
                for key in unknown {
                    map.remove(&key);
                    dropped.push(at.join(&key).to_string());
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune(item, item_schema, &at.join_index(i), false, dropped);
                }
            }
        }
        _ => {}
    }
}

fn default(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema["properties"].as_object() {
                for (key, child_schema) in properties {
                    if !map.contains_key(key)
                        && let Some(d) = child_schema.get("default")
                    {
                        map.insert(key.clone(), d.clone());
                    }
                    if let Some(child) = map.get_mut(key) {
                        default(child, child_schema);
                    }
                }
            } else if let Some(inner) = schema.get("additionalProperties").filter(|a| a.is_object())
            {
                for child in map.values_mut() {
                    default(child, inner);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    default(item, item_schema);
                }
            }
        }
        _ => {}
    }
}

/// Evaluates the simple JSONPaths of printer columns and scale paths (`.spec.replicas`,
/// `.status.conditions[0].type`, `.metadata.labels.app`).
pub fn json_path<'a>(object: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim().trim_start_matches('{').trim_end_matches('}');
    let path = path.strip_prefix('.').unwrap_or(path);
    let mut at = object;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            at = at.get(name)?;
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            at = at.get(index)?;
        }
    }
    Some(at)
}

/// Sets the value at a simple JSONPath, making the objects on the way.
pub fn set_json_path(object: &mut Value, path: &str, value: Value) {
    let path = path.trim().trim_start_matches('.');
    let mut at = object;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        if !at.is_object() {
            *at = Value::Object(Map::new());
        }
        at = &mut at[part];
    }
    *at = value;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true,
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                     "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                     "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "required": ["size"], "properties": {
                            "size": {"type": "integer", "minimum": 1},
                            "color": {"type": "string", "enum": ["red", "blue"], "default": "red"},
                            "port": {"x-kubernetes-int-or-string": true},
                            "note": {"type": "string", "nullable": true},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                        }},
                        "status": {"type": "object", "properties": {"replicas": {"type": "integer"}}}
                     }}}},
                    {"name": "v1beta1", "served": true, "storage": false}
                ]}
        })
    }

    #[test]
    fn a_crd_defines_its_served_versions() {
        let versions = served_versions(&crd()).expect("valid");
        assert_eq!(versions.len(), 2);
        let v1 = &versions[0];
        assert_eq!(
            (v1.kind.as_str(), v1.plural.as_str(), v1.list_kind.as_str()),
            ("Widget", "widgets", "WidgetList")
        );
        assert!(v1.status && v1.scale.is_some() && v1.storage && v1.namespaced);
        assert_eq!(v1.columns[0].json_path, ".spec.size");
        let mut bad = crd();
        bad["metadata"]["name"] = json!("gadgets.example.com");
        assert!(matches!(served_versions(&bad), Err(CrdError::Name(_))));
        let mut two = crd();
        two["spec"]["versions"][1]["storage"] = json!(true);
        assert_eq!(served_versions(&two).err(), Some(CrdError::StorageVersions));
    }

    #[test]
    fn prune_default_and_validate_as_the_apiserver_does() {
        let versions = served_versions(&crd()).expect("valid");
        let schema = versions[0].schema.as_ref().expect("schema");
        let mut object = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 2, "bogus": 1, "port": "http", "note": null, "extra": {"anything": [1]}}, "other": true});
        let dropped = schema.prune(&mut object);
        assert_eq!(dropped, ["/other", "/spec/bogus"]);
        schema.default(&mut object);
        assert_eq!(object["spec"]["color"], "red");
        assert_eq!(object["spec"]["extra"]["anything"], json!([1]));
        assert!(
            schema.validate(&object).is_empty(),
            "{:?}",
            schema.validate(&object)
        );

        let wrong = json!({"spec": {"size": "big", "color": "green"}});
        let mut messages: Vec<String> = schema
            .validate(&wrong)
            .into_iter()
            .map(|f| format!("{}: {}", dotted(&f.pointer), f.message))
            .collect();
        messages.sort();
        assert_eq!(
            messages,
            [
                "spec.color: Unsupported value: \"green\": supported values: \"red\", \"blue\"",
                "spec.size: Invalid value: \"big\": spec.size in body must be of type integer: \"string\"",
            ]
        );
        let small = json!({"spec": {"size": 0}});
        assert_eq!(
            schema.validate(&small)[0].message,
            "Invalid value: 0: spec.size in body should be greater than or equal to 1"
        );
        let missing = json!({"spec": {}});
        assert_eq!(schema.validate(&missing)[0].pointer, "/spec/size");
    }

    #[test]
    fn json_paths() {
        let o = json!({"spec": {"size": 3}, "status": {"conditions": [{"type": "Ready"}]}});
        assert_eq!(json_path(&o, ".spec.size"), Some(&json!(3)));
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(&json!("Ready"))
        );
        assert_eq!(json_path(&o, ".spec.missing"), None);
        let mut o = o;
        set_json_path(&mut o, ".status.replicas", json!(2));
        assert_eq!(o["status"]["replicas"], 2);
    }
}
