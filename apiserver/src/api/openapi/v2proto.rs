//! `/openapi/v2` as kubectl asks for it: the gnostic `openapi_v2.Document` protobuf message
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`). kubectl validates manifests
//! on the client with it when the server cannot do so for a kind (a `kind: List` always), and
//! cannot read JSON there. The document carries the Swagger version, info and definitions
//! (what kubectl's validators and `explain` read); `default`, `enum` and vendor extensions
//! travel as YAML text (JSON is YAML), as gnostic's `Any` does.

use serde_json::{Map, Value};

/// The media type kubectl asks for.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";

/// The media type of the answer, as kube-apiserver writes it (Go's MIME parser refuses the
/// `@` of the requested one).
pub const CONTENT_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A protobuf message being written.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, 2);
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn string(&mut self, field: u32, text: &str) {
        if !text.is_empty() {
            self.bytes(field, text.as_bytes());
        }
    }

    fn message(&mut self, field: u32, message: Message) {
        self.bytes(field, &message.0);
    }

    fn boolean(&mut self, field: u32, value: bool) {
        if value {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int(&mut self, field: u32, value: i64) {
        self.key(field, 0);
        self.varint(value as u64);
    }

    fn double(&mut self, field: u32, value: f64) {
        self.key(field, 1);
        self.0.extend_from_slice(&value.to_bits().to_le_bytes());
    }
}

/// gnostic `Any`: the value as YAML text (field 2).
fn any(value: &Value) -> Message {
    let mut m = Message::default();
    m.string(2, &value.to_string());
    m
}

/// gnostic `NamedAny` (name 1, value 2).
fn named_any(name: &str, value: &Value) -> Message {
    let mut m = Message::default();
    m.string(1, name);
    m.message(2, any(value));
    m
}

/// gnostic `NamedSchema` (name 1, value 2).
fn named_schema(name: &str, value: &Value) -> Message {
    let mut m = Message::default();
    m.string(1, name);
    m.message(2, schema(value));
    m
}

/// gnostic `Schema`, from a Swagger 2.0 schema in JSON.
fn schema(value: &Value) -> Message {
    let mut m = Message::default();
    let Value::Object(map) = value else {
        return m;
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str).unwrap_or_default();
    m.string(1, text("$ref"));
    m.string(2, text("format"));
    m.string(3, text("title"));
    m.string(4, text("description"));
    if let Some(default) = map.get("default") {
        m.message(5, any(default));
    }
    for (field, key) in [(7, "maximum"), (9, "minimum")] {
        if let Some(n) = map.get(key).and_then(Value::as_f64) {
            m.double(field, n);
        }
    }
    for (field, key) in [
        (11, "maxLength"),
        (12, "minLength"),
        (14, "maxItems"),
        (15, "minItems"),
        (17, "maxProperties"),
        (18, "minProperties"),
    ] {
        if let Some(n) = map.get(key).and_then(Value::as_i64) {
            m.int(field, n);
        }
    }
    m.string(13, text("pattern"));
    m.boolean(16, map.get("uniqueItems") == Some(&Value::Bool(true)));
    for required in map
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.string(19, required.as_str().unwrap_or_default());
    }
    for value in map
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(20, any(value));
    }
    match map.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Message::default();
            item.key(2, 0);
            item.varint(u64::from(*b));
            m.message(21, item);
        }
        Some(inner @ Value::Object(_)) => {
            let mut item = Message::default();
            item.message(1, schema(inner));
            m.message(21, item);
        }
        _ => {}
    }
    if let Some(ty) = map.get("type").and_then(Value::as_str) {
        let mut item = Message::default();
        item.string(1, ty);
        m.message(22, item);
    }
    if let Some(items) = map.get("items") {
        let mut item = Message::default();
        match items {
            Value::Array(several) => several.iter().for_each(|s| item.message(1, schema(s))),
            one => item.message(1, schema(one)),
        }
        m.message(23, item);
    }
    for part in map
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        m.message(24, schema(part));
    }
    if let Some(Value::Object(properties)) = map.get("properties") {
        let mut item = Message::default();
        for (name, property) in properties {
            item.message(1, named_schema(name, property));
        }
        m.message(25, item);
    }
    m.boolean(27, map.get("readOnly") == Some(&Value::Bool(true)));
    for (key, value) in map.iter().filter(|(k, _)| k.starts_with("x-")) {
        m.message(31, named_any(key, value));
    }
    m
}

/// The whole document: swagger (1), info (2: title 1, version 2), definitions (9).
pub fn encode(document: &Value) -> Vec<u8> {
    let mut doc = Message::default();
    doc.string(1, document["swagger"].as_str().unwrap_or("2.0"));
    let mut info = Message::default();
    info.string(1, document["info"]["title"].as_str().unwrap_or_default());
    info.string(2, document["info"]["version"].as_str().unwrap_or_default());
    doc.message(2, info);
    let empty = Map::new();
    let definitions = document["definitions"].as_object().unwrap_or(&empty);
    let mut defs = Message::default();
    for (name, definition) in definitions {
        defs.message(1, named_schema(name, definition));
    }
    doc.message(9, defs);
    doc.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_definition_is_written_with_gnostics_field_numbers() {
        let doc = json!({"swagger": "2.0", "info": {"title": "t", "version": "v"},
            "definitions": {"A": {"type": "object", "required": ["x"],
                "properties": {"x": {"type": "string"}}}}});
        let bytes = encode(&doc);
        // swagger = "2.0"
        assert_eq!(&bytes[..5], &[0x0a, 3, b'2', b'.', b'0']);
        // info { title "t", version "v" }
        assert_eq!(&bytes[5..13], &[0x12, 6, 0x0a, 1, b't', 0x12, 1, b'v']);
        // definitions (field 9, wire type 2) follow.
        assert_eq!(bytes[13], 0x4a);
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("object") && text.contains('x'));
    }
}
