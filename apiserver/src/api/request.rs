//! What handlers need from a request: the query parameters, the Accept header, the body
//! (size-limited, JSON, YAML or Kubernetes protobuf) and the response helpers.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Response, StatusCode, header};
use serde_json::Value;

use super::status::ApiError;

/// The largest request body accepted (Kubernetes' limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Query parameters; the last value of a repeated one wins.
pub fn query(raw: Option<&str>) -> HashMap<String, String> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// Reads the body, refusing more than [`MAX_BODY`] bytes.
pub async fn body_bytes(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large(MAX_BODY))
}

/// The media type of the request body, lowercased, without parameters.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("application/json")
        .trim()
        .to_ascii_lowercase()
}

/// The Accept header ("" when absent).
pub fn accept(headers: &HeaderMap) -> String {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The shape of the answer a client asks for in its Accept header: the objects themselves, a
/// `meta.k8s.io` Table (what `kubectl get` prints), or their metadata only
/// (`PartialObjectMetadata`, what metadata informers and garbage collectors read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The objects (JSON; also the answer to a protobuf Accept, as client-go takes JSON too).
    Object,
    /// A `Table`.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

impl Shape {
    /// The first acceptable shape named in the request's Accept header.
    pub fn of(headers: &HeaderMap) -> Shape {
        let accept = accept(headers);
        let first = accept.split(',').next().unwrap_or_default();
        if !first.contains("g=meta.k8s.io") {
            return Shape::Object;
        }
        if first.contains("as=Table") {
            Shape::Table
        } else if first.contains("as=PartialObjectMetadata") {
            Shape::Metadata
        } else {
            Shape::Object
        }
    }
}

/// Parses a JSON, YAML or Kubernetes protobuf body into one object.
pub fn parse_object(bytes: &[u8], media_type: &str) -> Result<Value, ApiError> {
    match media_type {
        "application/json" | "" | "*/*" => serde_json::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
            let limits = ferry_schema::loader::LoadLimits::default();
            let mut docs = ferry_schema::loader::load_documents(text, &limits);
            match docs.len() {
                1 => docs.remove(0).value.map_err(|e| {
                    ApiError::bad_request(format!(
                        "the request body is not valid YAML: {}",
                        e.error
                    ))
                }),
                _ => Err(ApiError::bad_request(
                    "the request body must hold exactly one YAML document",
                )),
            }
        }
        super::protobuf::MEDIA_TYPE => super::protobuf::decode_object(bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "the request body is not a valid protobuf object: {e}"
            ))
        }),
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// A JSON response.
pub fn json_response(code: StatusCode, value: &Value, warnings: &[String]) -> Response<Body> {
    json_text_response(code, value.to_string(), warnings)
}

/// A JSON response of text already encoded, with warnings.
pub fn json_text_response(code: StatusCode, text: String, warnings: &[String]) -> Response<Body> {
    let mut response = Response::new(Body::from(text));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    for warning in warnings {
        let text = format!("299 - {}", serde_json::Value::String(warning.clone()));
        if let Ok(v) = header::HeaderValue::from_str(&text) {
            headers.append("Warning", v);
        }
    }
    response
}

/// A response with a given content type.
pub fn typed_response(content_type: &'static str, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
