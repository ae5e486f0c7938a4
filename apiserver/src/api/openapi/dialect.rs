//! ferry's JSON Schemas (draft 2020-12) in the OpenAPI dialects Kubernetes serves, which is what
//! kubectl's templates and validators read: one `type` per schema, `nullable: true` in v3
//! instead of a `"null"` type, IntOrString as `x-kubernetes-int-or-string`, `const` as a
//! one-value `enum`, and in v3 a `$ref` with sibling keywords wrapped in `allOf`.

use serde_json::{Map, Value, json};

/// Which OpenAPI version a schema is rewritten for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Swagger 2.0 (`/openapi/v2`): no `nullable`.
    V2,
    /// OpenAPI 3.0 (`/openapi/v3/...`).
    V3,
}

/// Rewrites `schema` (and everything under it) for `dialect`.
pub fn rewrite(schema: &mut Value, dialect: Dialect) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                // Property names and definition names are not schemas' keywords.
                match key.as_str() {
                    "properties" | "$defs" | "definitions" | "patternProperties" => {
                        if let Value::Object(children) = value {
                            for child in children.values_mut() {
                                rewrite(child, dialect);
                            }
                        }
                    }
                    "enum" | "const" | "default" | "example" | "required" => {}
                    _ => rewrite(value, dialect),
                }
            }
            keywords(map, dialect);
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, dialect)),
        _ => {}
    }
}

fn keywords(map: &mut Map<String, Value>, dialect: Dialect) {
    if let Some(value) = map.remove("const") {
        map.insert("enum".into(), json!([value]));
    }
    if let Some(Value::Array(types)) = map.get("type").cloned() {
        let nullable = types.iter().any(|t| t == "null");
        let rest: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
        let int_or_string = rest.len() == 2
            && rest.iter().any(|t| *t == "integer")
            && rest.iter().any(|t| *t == "string");
        if int_or_string || map.contains_key("x-kubernetes-int-or-string") {
            map.remove("type");
            map.insert("x-kubernetes-int-or-string".into(), json!(true));
            if dialect == Dialect::V2 {
                map.insert("type".into(), json!("string"));
                map.insert("format".into(), json!("int-or-string"));
            }
        } else if let [only] = rest.as_slice() {
            map.insert("type".into(), (*only).clone());
        } else {
            // string or number (a Quantity): both are written as a string.
            map.insert("type".into(), json!("string"));
        }
        if nullable && dialect == Dialect::V3 {
            map.insert("nullable".into(), json!(true));
        }
    }
    // A null-or-reference: the reference, nullable.
    if let Some(Value::Array(any)) = map.get("anyOf").cloned() {
        let (nulls, rest): (Vec<&Value>, Vec<&Value>) = any
            .iter()
            .partition(|s| s.get("type").is_some_and(|t| t == "null"));
        if !nulls.is_empty() && rest.len() == 1 {
            map.remove("anyOf");
            if let Value::Object(inner) = rest[0] {
                for (k, v) in inner {
                    map.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            if dialect == Dialect::V3 {
                map.insert("nullable".into(), json!(true));
            }
        }
    }
    if dialect == Dialect::V3
        && map.len() > 1
        && let Some(reference) = map.remove("$ref")
    {
        map.insert("allOf".into(), json!([{"$ref": reference}]));
    }
    map.remove("$schema");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_type_per_schema_and_nullable_in_v3() {
        let mut schema = json!({"type": "object", "properties": {
            "name": {"type": ["string", "null"]},
            "port": {"type": ["integer", "string"], "x-kubernetes-int-or-string": true},
            "kind": {"const": "Pod"},
            "spec": {"$ref": "#/components/schemas/Spec", "description": "the spec"},
            "type": {"type": "string"},
        }});
        let mut v2 = schema.clone();
        rewrite(&mut schema, Dialect::V3);
        assert_eq!(
            schema["properties"]["name"],
            json!({"type": "string", "nullable": true})
        );
        assert_eq!(
            schema["properties"]["port"],
            json!({"x-kubernetes-int-or-string": true})
        );
        assert_eq!(schema["properties"]["kind"], json!({"enum": ["Pod"]}));
        assert_eq!(
            schema["properties"]["spec"],
            json!({"allOf": [{"$ref": "#/components/schemas/Spec"}], "description": "the spec"})
        );
        // A property named "type" is a property, not a keyword.
        assert_eq!(schema["properties"]["type"], json!({"type": "string"}));
        rewrite(&mut v2, Dialect::V2);
        assert_eq!(v2["properties"]["name"], json!({"type": "string"}));
        assert_eq!(
            v2["properties"]["port"],
            json!({"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": true})
        );
        assert_eq!(
            v2["properties"]["spec"]["$ref"],
            "#/components/schemas/Spec"
        );
    }
}
