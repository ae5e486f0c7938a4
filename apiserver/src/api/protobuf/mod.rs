//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into the
//! JSON form every other part of the apiserver works on.
//!
//! client-go's typed clients (and so `kubectl create namespace`, `create deployment`, `create
//! configmap`, ...) send objects this way: the magic `k8s\0`, then a `runtime.Unknown` envelope
//! that carries `apiVersion`, `kind` and the object's own message. Messages are decoded by a
//! table ([`catalog`]) generated from the Kubernetes `.proto` field numbers by
//! `ops/protobuf/generate.py`, with the JSON names from ferry's schemas. The types whose JSON
//! form is not a plain object (Quantity, IntOrString, Time, MicroTime, Duration, RawExtension,
//! FieldsV1) are mapped as Kubernetes maps them ([`special`]).
//!
//! Go writes every non-pointer field, so a decoded message is full of empty strings and zero
//! times that a JSON client would have left out. Empty strings and zero times are dropped (Go
//! reads them as "not set" either way); numbers and booleans are kept as sent.

mod catalog;
mod special;
mod wire;

use serde_json::{Map, Value};

pub use catalog::{Catalog, Field, FieldType, Shape};
use wire::{Reader, Wire};

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
const MAGIC: &[u8] = b"k8s\0";

/// Why a protobuf body could not be decoded. `at` is the JSON path of the field being read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtobufError {
    /// The body does not start with `k8s\0`.
    #[error("the body is not a Kubernetes protobuf message (it does not start with k8s\\0)")]
    NoMagic,
    /// The envelope names no apiVersion or kind.
    #[error("the protobuf envelope names no apiVersion and kind")]
    NoTypeMeta,
    /// A kind this server has no protobuf form of.
    #[error("{api_version}, Kind={kind} has no protobuf form on this server; send it as JSON")]
    UnknownKind {
        /// The envelope's apiVersion.
        api_version: String,
        /// The envelope's kind.
        kind: String,
    },
    /// The envelope's content is compressed or of another type.
    #[error("the protobuf envelope's content {0} is not supported")]
    Encoding(String),
    /// The bytes end inside a value.
    #[error("{at}: the message ends inside a field")]
    Truncated {
        /// Where.
        at: String,
    },
    /// A field arrived with a wire type its declaration does not allow.
    #[error("{at}: field {tag} has wire type {wire}, which does not fit its declared type")]
    WireType {
        /// Where.
        at: String,
        /// The field number.
        tag: u32,
        /// The wire type seen.
        wire: u8,
    },
    /// A string that is not UTF-8.
    #[error("{at}: not valid UTF-8")]
    Utf8 {
        /// Where.
        at: String,
    },
    /// An embedded object that is neither JSON nor protobuf.
    #[error("{at}: embedded object is not valid: {reason}")]
    Embedded {
        /// Where.
        at: String,
        /// What was wrong.
        reason: String,
    },
    /// The compiled-in message table does not parse.
    #[error("the protobuf message table is broken: {0}")]
    Table(String),
    /// Messages nested deeper than any Kubernetes object is.
    #[error("{at}: nested too deeply")]
    TooDeep {
        /// Where.
        at: String,
    },
}

/// The deepest nesting of messages accepted (Kubernetes objects stay well under 40).
const MAX_DEPTH: usize = 64;

/// Decodes a whole protobuf request body into its JSON object, with `apiVersion` and `kind`.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtobufError> {
    let catalog = Catalog::get().map_err(|e| ProtobufError::Table(e.to_owned()))?;
    decode_with(catalog, body, 0)
}

fn decode_with(catalog: &Catalog, body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtobufError::NoMagic)?;
    let envelope = Envelope::read(rest)?;
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::Encoding(format!(
            "encoding {:?}",
            envelope.content_encoding
        )));
    }
    if !envelope.content_type.is_empty() && envelope.content_type != MEDIA_TYPE {
        return Err(ProtobufError::Encoding(format!(
            "type {:?}",
            envelope.content_type
        )));
    }
    if envelope.api_version.is_empty() || envelope.kind.is_empty() {
        return Err(ProtobufError::NoTypeMeta);
    }
    let message = catalog
        .kind(&envelope.api_version, &envelope.kind)
        .ok_or_else(|| ProtobufError::UnknownKind {
            api_version: envelope.api_version.clone(),
            kind: envelope.kind.clone(),
        })?;
    let mut object = Map::new();
    object.insert("apiVersion".into(), Value::String(envelope.api_version));
    object.insert("kind".into(), Value::String(envelope.kind));
    let decoder = Decoder { catalog };
    decoder.message_into(message, envelope.raw, "", depth, &mut object)?;
    Ok(Value::Object(object))
}

/// The `runtime.Unknown` envelope.
#[derive(Default)]
struct Envelope<'a> {
    api_version: String,
    kind: String,
    raw: &'a [u8],
    content_encoding: String,
    content_type: String,
}

impl<'a> Envelope<'a> {
    fn read(bytes: &'a [u8]) -> Result<Self, ProtobufError> {
        let at = "envelope";
        let mut envelope = Envelope::default();
        let mut reader = Reader::new(bytes);
        while let Some((tag, value)) = reader.next(at)? {
            match (tag, value) {
                (1, Wire::Bytes(type_meta)) => {
                    let mut inner = Reader::new(type_meta);
                    while let Some((tag, value)) = inner.next(at)? {
                        match (tag, value) {
                            (1, Wire::Bytes(b)) => envelope.api_version = text(b, at)?,
                            (2, Wire::Bytes(b)) => envelope.kind = text(b, at)?,
                            _ => {}
                        }
                    }
                }
                (2, Wire::Bytes(raw)) => envelope.raw = raw,
                (3, Wire::Bytes(b)) => envelope.content_encoding = text(b, at)?,
                (4, Wire::Bytes(b)) => envelope.content_type = text(b, at)?,
                _ => {}
            }
        }
        Ok(envelope)
    }
}

fn text(bytes: &[u8], at: &str) -> Result<String, ProtobufError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ProtobufError::Utf8 { at: at.to_owned() })
}

fn join(at: &str, name: &str) -> String {
    if at.is_empty() {
        name.to_owned()
    } else {
        format!("{at}.{name}")
    }
}

/// Walks messages by the catalog's table.
struct Decoder<'c> {
    catalog: &'c Catalog,
}

impl Decoder<'_> {
    /// Decodes one message as a JSON value (special types become strings, numbers, ...).
    fn message(
        &self,
        key: &str,
        bytes: &[u8],
        at: &str,
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        if let Some(special) = special::Special::of(key) {
            return special.decode(bytes, at, |raw, at| self.embedded(raw, at, depth));
        }
        let mut object = Map::new();
        self.message_into(key, bytes, at, depth, &mut object)?;
        Ok(Some(Value::Object(object)))
    }

    /// Decodes one message's fields into `object` (inline fields land there too).
    fn message_into(
        &self,
        key: &str,
        bytes: &[u8],
        at: &str,
        depth: usize,
        object: &mut Map<String, Value>,
    ) -> Result<(), ProtobufError> {
        if depth > MAX_DEPTH {
            return Err(ProtobufError::TooDeep { at: at.to_owned() });
        }
        let fields = self.catalog.message(key);
        let mut reader = Reader::new(bytes);
        while let Some((tag, value)) = reader.next(at)? {
            let Some(field) = fields.and_then(|f| f.iter().find(|f| f.tag == tag)) else {
                continue; // a field newer than the table: ignored, as proto readers do
            };
            let here = join(at, &field.name);
            match field.shape {
                Shape::Optional => {
                    if field.name.is_empty() {
                        // Embedded Go struct: its fields belong to this object.
                        let FieldType::Message(inner) = &field.ty else {
                            continue;
                        };
                        let Wire::Bytes(b) = value else {
                            return Err(wire_error(&here, tag, &value));
                        };
                        self.message_into(inner, b, at, depth + 1, object)?;
                    } else if let Some(v) = self.value(field, value, &here, depth)? {
                        // ObjectMeta's generation is a server field: Go writes its zero, which
                        // means "not set".
                        if key.ends_with("meta.v1.ObjectMeta")
                            && field.name == "generation"
                            && v == 0
                        {
                            continue;
                        }
                        merge_into(object, &field.name, v);
                    }
                }
                Shape::Repeated => {
                    let list = object
                        .entry(field.name.clone())
                        .or_insert_with(|| Value::Array(Vec::new()));
                    let Value::Array(items) = list else { continue };
                    match (&field.ty, value) {
                        (FieldType::Int32 | FieldType::Int64 | FieldType::Bool, Wire::Bytes(b)) => {
                            // A packed run of varints.
                            let mut packed = Reader::new(b);
                            while !packed.done() {
                                let v = packed.varint(&here)?;
                                items.push(scalar_number(&field.ty, v));
                            }
                        }
                        (_, value) => {
                            if let Some(v) = self.value(field, value, &here, depth)? {
                                items.push(v);
                            }
                        }
                    }
                }
                Shape::Map => {
                    let Wire::Bytes(entry) = value else {
                        return Err(wire_error(&here, tag, &value));
                    };
                    let (k, v) = self.map_entry(field, entry, &here, depth)?;
                    let map = object
                        .entry(field.name.clone())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let (Value::Object(map), Some(v)) = (map, v) {
                        map.insert(k, v);
                    }
                }
            }
        }
        Ok(())
    }

    /// One `map<string, V>` entry: key is field 1, value field 2.
    fn map_entry(
        &self,
        field: &Field,
        entry: &[u8],
        at: &str,
        depth: usize,
    ) -> Result<(String, Option<Value>), ProtobufError> {
        let mut key = String::new();
        let mut value = None;
        let mut reader = Reader::new(entry);
        while let Some((tag, wire)) = reader.next(at)? {
            match (tag, wire) {
                (1, Wire::Bytes(b)) => key = text(b, at)?,
                (2, wire) => value = Some(wire),
                (tag, wire) => return Err(wire_error(at, tag, &wire)),
            }
        }
        let at = join(at, &key);
        let value = match value {
            Some(wire) => self.value(field, wire, &at, depth)?,
            // An absent value is the type's zero value.
            None => Some(match &field.ty {
                FieldType::Message(_) => Value::Object(Map::new()),
                FieldType::Int32 | FieldType::Int64 => Value::from(0),
                FieldType::Bool => Value::Bool(false),
                _ => Value::String(String::new()),
            }),
        };
        Ok((key, value))
    }

    /// One field value. `None` for values a JSON client would have left out.
    fn value(
        &self,
        field: &Field,
        wire: Wire<'_>,
        at: &str,
        depth: usize,
    ) -> Result<Option<Value>, ProtobufError> {
        let tag = field.tag;
        Ok(match (&field.ty, wire) {
            (FieldType::String, Wire::Bytes(b)) => {
                let s = text(b, at)?;
                // Empty strings are kept inside maps and lists, where they are values.
                (!s.is_empty() || field.shape != Shape::Optional).then_some(Value::String(s))
            }
            (FieldType::Bytes, Wire::Bytes(b)) => Some(Value::String(special::base64(b))),
            (FieldType::Int32 | FieldType::Int64 | FieldType::Bool, Wire::Varint(v)) => {
                Some(scalar_number(&field.ty, v))
            }
            (FieldType::Double, Wire::Fixed64(v)) => {
                serde_json::Number::from_f64(f64::from_bits(v)).map(Value::Number)
            }
            (FieldType::Message(key), Wire::Bytes(b)) => self.message(key, b, at, depth + 1)?,
            (_, wire) => return Err(wire_error(at, tag, &wire)),
        })
    }

    /// A RawExtension's bytes: JSON, or a nested Kubernetes protobuf object.
    fn embedded(&self, raw: &[u8], at: &str, depth: usize) -> Result<Value, ProtobufError> {
        if raw.starts_with(MAGIC) {
            return decode_with(self.catalog, raw, depth + 1).map_err(|e| {
                ProtobufError::Embedded {
                    at: at.to_owned(),
                    reason: e.to_string(),
                }
            });
        }
        serde_json::from_slice(raw).map_err(|e| ProtobufError::Embedded {
            at: at.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// Sets `name` in `object`; a message that arrives twice is merged, as protobuf merges it.
fn merge_into(object: &mut Map<String, Value>, name: &str, value: Value) {
    match (object.get_mut(name), value) {
        (Some(Value::Object(old)), Value::Object(new)) => old.extend(new),
        (_, value) => {
            object.insert(name.to_owned(), value);
        }
    }
}

fn scalar_number(ty: &FieldType, v: u64) -> Value {
    match ty {
        FieldType::Bool => Value::Bool(v != 0),
        // int32 travels as a sign-extended 64-bit varint.
        FieldType::Int32 => Value::from(v as i64 as i32),
        _ => Value::from(v as i64),
    }
}

fn wire_error(at: &str, tag: u32, wire: &Wire<'_>) -> ProtobufError {
    ProtobufError::WireType {
        at: at.to_owned(),
        tag,
        wire: wire.type_number(),
    }
}

#[cfg(test)]
mod tests;
