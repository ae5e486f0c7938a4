//! The message table: for each Kubernetes message ferry decodes, its fields' numbers, JSON
//! names, shapes and types. Generated into `messages.json` by `ops/protobuf/generate.py` and
//! read once, on the first protobuf request.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

/// How often a field may occur.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// At most once.
    Optional,
    /// A list.
    Repeated,
    /// A `map<string, V>`.
    Map,
}

/// A field's type (of the map value, for maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldType {
    /// UTF-8 text.
    String,
    /// Bytes, base64 in JSON.
    Bytes,
    /// A boolean.
    Bool,
    /// A 32-bit integer.
    Int32,
    /// A 64-bit integer.
    Int64,
    /// A double.
    Double,
    /// A message, by its key in the table.
    Message(String),
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field number.
    pub tag: u32,
    /// The JSON name; empty for an embedded (inline) Go struct.
    pub name: String,
    /// How often it occurs.
    pub shape: Shape,
    /// Its type.
    pub ty: FieldType,
}

/// A field as `messages.json` writes it: `[tag, name, shape, type, message?]`.
#[derive(Deserialize)]
struct RawField(u32, String, Shape, String, #[serde(default)] Option<String>);

#[derive(Deserialize)]
struct RawCatalog {
    kinds: HashMap<String, String>,
    messages: HashMap<String, Vec<RawField>>,
}

/// The table, ready for lookups.
#[derive(Debug)]
pub struct Catalog {
    kinds: HashMap<String, String>,
    messages: HashMap<String, Vec<Field>>,
}

static CATALOG: LazyLock<Result<Catalog, String>> =
    LazyLock::new(|| Catalog::parse(include_str!("messages.json")).map_err(|e| e.to_string()));

impl Catalog {
    /// The table compiled into the binary (an error only if `messages.json` was broken by
    /// hand; the unit tests parse it).
    pub fn get() -> Result<&'static Catalog, &'static str> {
        CATALOG.as_ref().map_err(String::as_str)
    }

    /// Reads a table in `messages.json`'s form.
    pub fn parse(text: &str) -> Result<Catalog, serde_json::Error> {
        let raw: RawCatalog = serde_json::from_str(text)?;
        let messages = raw
            .messages
            .into_iter()
            .map(|(key, fields)| {
                let fields = fields
                    .into_iter()
                    .map(|RawField(tag, name, shape, ty, message)| Field {
                        tag,
                        name,
                        shape,
                        ty: match ty.as_str() {
                            "string" => FieldType::String,
                            "bytes" => FieldType::Bytes,
                            "bool" => FieldType::Bool,
                            "int32" => FieldType::Int32,
                            "int64" => FieldType::Int64,
                            "double" => FieldType::Double,
                            _ => FieldType::Message(message.unwrap_or_default()),
                        },
                    })
                    .collect();
                (key, fields)
            })
            .collect();
        Ok(Catalog {
            kinds: raw.kinds,
            messages,
        })
    }

    /// The message of `apiVersion` + `kind`.
    pub fn kind(&self, api_version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&format!("{api_version}/{kind}"))
            .map(String::as_str)
    }

    /// A message's fields.
    pub fn message(&self, key: &str) -> Option<&[Field]> {
        self.messages.get(key).map(Vec::as_slice)
    }

    /// How many messages the table holds.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Every (apiVersion/kind, message) pair.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &str)> {
        self.kinds.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
