//! The Kubernetes types whose JSON form is not the object their message describes: a Quantity
//! is a string, an IntOrString a number or a string, Time and MicroTime RFC 3339 text, and
//! RawExtension and FieldsV1 carry JSON (or, for RawExtension, a nested protobuf object).

use base64::Engine as _;
use serde_json::Value;

use super::ProtobufError;
use super::wire::{Reader, Wire};

/// A message decoded by a rule of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// `resource.Quantity`: field 1 is the canonical string.
    Quantity,
    /// `intstr.IntOrString`: type (1) 0 is intVal (2), 1 is strVal (3).
    IntOrString,
    /// `meta/v1.Time`: seconds (1) and nanos (2) since the epoch, shown to the second.
    Time,
    /// `meta/v1.MicroTime`: the same, shown to the microsecond.
    MicroTime,
    /// `runtime.RawExtension`: raw (1) is an embedded object.
    RawExtension,
    /// `meta/v1.FieldsV1`: raw (1) is JSON.
    FieldsV1,
}

impl Special {
    /// The rule for a message key, if it has one.
    pub fn of(key: &str) -> Option<Special> {
        Some(match key {
            "apimachinery.pkg.api.resource.Quantity"
            | "apimachinery.pkg.api.resource.QuantityValue" => Special::Quantity,
            "apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
            "apimachinery.pkg.apis.meta.v1.Time" => Special::Time,
            "apimachinery.pkg.apis.meta.v1.MicroTime" => Special::MicroTime,
            "apimachinery.pkg.runtime.RawExtension" => Special::RawExtension,
            "apimachinery.pkg.apis.meta.v1.FieldsV1" => Special::FieldsV1,
            _ => return None,
        })
    }

    /// Decodes the message's bytes. `None` is "not set" (a zero time).
    pub fn decode(
        self,
        bytes: &[u8],
        at: &str,
        embedded: impl Fn(&[u8], &str) -> Result<Value, ProtobufError>,
    ) -> Result<Option<Value>, ProtobufError> {
        let mut varints = [0u64; 4];
        let mut text: Option<&[u8]> = None;
        let mut reader = Reader::new(bytes);
        while let Some((tag, wire)) = reader.next(at)? {
            match (tag, wire) {
                (1..=3, Wire::Varint(v)) => varints[tag as usize] = v,
                (1..=3, Wire::Bytes(b)) => text = Some(b),
                (tag, wire) => {
                    return Err(ProtobufError::WireType {
                        at: at.to_owned(),
                        tag,
                        wire: wire.type_number(),
                    });
                }
            }
        }
        Ok(match self {
            Special::Quantity => Some(Value::String(super::text(text.unwrap_or_default(), at)?)),
            Special::IntOrString => Some(if varints[1] == 1 {
                Value::String(super::text(text.unwrap_or_default(), at)?)
            } else {
                Value::from(varints[2] as i64 as i32)
            }),
            Special::Time | Special::MicroTime => {
                let (seconds, nanos) = (varints[1] as i64, varints[2] as i64 as i32);
                if seconds == 0 && nanos == 0 {
                    return Ok(None); // Go's zero time: `null` in JSON, i.e. not set
                }
                Some(Value::String(timestamp(
                    seconds,
                    nanos,
                    self == Special::MicroTime,
                    at,
                )?))
            }
            Special::RawExtension => match text {
                Some(raw) if !raw.is_empty() => Some(embedded(raw, at)?),
                _ => None,
            },
            Special::FieldsV1 => {
                match text {
                    Some(raw) if !raw.is_empty() => Some(serde_json::from_slice(raw).map_err(
                        |e| ProtobufError::Embedded {
                            at: at.to_owned(),
                            reason: e.to_string(),
                        },
                    )?),
                    _ => None,
                }
            }
        })
    }
}

/// RFC 3339 in UTC, as Kubernetes writes `Time` (seconds) and `MicroTime` (microseconds).
fn timestamp(seconds: i64, nanos: i32, micro: bool, at: &str) -> Result<String, ProtobufError> {
    let ts = jiff::Timestamp::new(seconds, nanos).map_err(|e| ProtobufError::Embedded {
        at: at.to_owned(),
        reason: format!("time out of range: {e}"),
    })?;
    let whole = ts.strftime("%Y-%m-%dT%H:%M:%S");
    Ok(if micro {
        format!("{whole}.{:06}Z", ts.subsec_nanosecond() / 1000)
    } else {
        format!("{whole}Z")
    })
}

/// Standard base64 with padding, as Go encodes `[]byte` in JSON.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
