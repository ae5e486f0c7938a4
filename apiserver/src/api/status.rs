//! API errors as Kubernetes `Status` objects: the one place errors become responses.

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use serde::Serialize;
use serde_json::{Value, json};

use crate::storage::StorageError;

/// A field-level reason for a 422 Invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`, ...
    pub reason: &'static str,
    /// The field, as a dotted path (`spec.ports[0].port`).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// An API error.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Kubernetes reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...).
    pub reason: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `details`: kind, name, group, causes.
    pub details: Option<Value>,
    /// A continue token offered with a 410 for an expired list continuation
    /// (`metadata.continue`).
    pub continue_token: Option<String>,
}

/// Why a terminating namespace refuses an object, in Kubernetes' words.
pub fn terminating_message(namespace: &str) -> String {
    format!("unable to create new content in namespace {namespace} because it is being terminated")
}

fn details(group: &str, kind: &str, name: &str) -> Option<Value> {
    Some(json!({"name": name, "group": group, "kind": kind}))
}

/// `deployments.apps`, or `pods` for the core group, as Kubernetes names resources in errors.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// An error with a code, reason and message, and no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
            continue_token: None,
        }
    }

    /// 403 Forbidden, for a request the API refuses whoever asks (a protected namespace).
    pub fn forbidden(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let qualified = qualified(group, resource);
        ApiError {
            details: details(group, resource, name),
            ..ApiError::new(
                403,
                "Forbidden",
                format!("{qualified} \"{name}\" is forbidden: {why}"),
            )
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }
    /// 404 NotFound for an object.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        ApiError {
            details: details(group, resource, name),
            ..ApiError::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
        }
    }
    /// 404 for a path that addresses nothing.
    pub fn no_route() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }
    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        ApiError {
            details: details(group, resource, name),
            ..ApiError::new(
                409,
                "AlreadyExists",
                format!("{qualified} \"{name}\" already exists"),
            )
        }
    }
    /// 409 Conflict (optimistic concurrency).
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        ApiError {
            details: details(group, resource, name),
            ..ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
            )
        }
    }
    /// 422 Invalid with field causes, worded as Kubernetes words it:
    /// `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: ...`, several causes
    /// in brackets.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| {
                if c.field.is_empty() {
                    c.message.clone()
                } else {
                    format!("{}: {}", c.field, c.message)
                }
            })
            .collect();
        let summary = match summary.len() {
            1 => summary.join(""),
            _ => format!("[{}]", summary.join(", ")),
        };
        let causes_json: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        let qualified_kind = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        ApiError {
            details: Some(
                json!({"name": name, "group": group, "kind": kind, "causes": causes_json}),
            ),
            ..ApiError::new(
                422,
                "Invalid",
                format!("{qualified_kind} \"{name}\" is invalid: {summary}"),
            )
        }
    }
    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }
    /// 410 Expired.
    pub fn expired(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }
    /// 413 RequestEntityTooLarge.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body is larger than {limit} bytes"),
        )
    }
    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format: {content_type}"),
        )
    }
    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, "ServiceUnavailable", message)
    }
    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    /// From a storage error, for an object of `resource` in `group`.
    pub fn from_storage(error: StorageError, group: &str, resource: &str) -> Self {
        match error {
            StorageError::NotFound(key) => ApiError::not_found(group, resource, &key.name),
            StorageError::AlreadyExists(key) => {
                ApiError::already_exists(group, resource, &key.name)
            }
            StorageError::Conflict { key, .. } => ApiError::conflict(group, resource, &key.name),
            StorageError::Expired { requested, oldest } => {
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            StorageError::Terminating(key) => {
                ApiError::new(403, "Forbidden", terminating_message(&key.name))
            }
            StorageError::Unavailable(message) => ApiError::unavailable(message),
            StorageError::Corrupt(key, message) => {
                ApiError::internal(format!("stored object {key} is corrupt: {message}"))
            }
        }
    }

    /// The `Status` object, as a value (a watch's `ERROR` event carries it).
    pub fn status(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }

    /// The `Status` with its fields in kube-apiserver's order.
    fn body(&self) -> StatusBody<'_> {
        StatusBody {
            kind: "Status",
            api_version: "v1",
            metadata: ListMeta {
                continue_token: self.continue_token.as_deref(),
            },
            status: "Failure",
            message: &self.message,
            reason: self.reason,
            details: self.details.as_ref().map(Details::of),
            code: self.code,
        }
    }

    /// The HTTP response carrying the `Status`: the bytes kube-apiserver sends (fields in its
    /// order, empty ones left out, a trailing newline).
    pub fn into_response(self) -> Response<Body> {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut text = serde_json::to_string(&self.body()).unwrap_or_default();
        text.push('\n');
        let mut response = Response::new(Body::from(text));
        *response.status_mut() = code;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// `Status` as kube-apiserver serializes it: struct order, not alphabetical.
#[derive(Serialize)]
struct StatusBody<'a> {
    kind: &'static str,
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    metadata: ListMeta<'a>,
    status: &'static str,
    message: &'a str,
    reason: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details>,
    code: u16,
}

#[derive(Serialize)]
struct ListMeta<'a> {
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_token: Option<&'a str>,
}

/// `StatusDetails`: name, group, kind, causes, with empty ones left out.
#[derive(Serialize)]
struct Details {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<CauseBody>,
}

#[derive(Serialize)]
struct CauseBody {
    #[serde(skip_serializing_if = "String::is_empty")]
    reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    field: String,
}

impl Details {
    fn of(details: &Value) -> Details {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Details {
            name: text(&details["name"]),
            group: text(&details["group"]),
            kind: text(&details["kind"]),
            causes: details["causes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| CauseBody {
                    reason: text(&c["reason"]),
                    message: text(&c["message"]),
                    field: text(&c["field"]),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bytes_are_kube_apiservers() {
        let response = ApiError::not_found("", "pods", "web").into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let text = ApiError::not_found("", "pods", "web");
        let body = serde_json::to_string(&text.body()).expect("serializes") + "\n";
        assert_eq!(
            body,
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"pods \\\"web\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"web\",\"kind\":\"pods\"},\"code\":404}\n"
        );
        let mut expired = ApiError::expired("too old");
        expired.continue_token = Some("abc".into());
        assert_eq!(
            serde_json::to_string(&expired.body()).expect("serializes"),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{\"continue\":\"abc\"},\"status\":\"Failure\",\"message\":\"too old\",\"reason\":\"Expired\",\"code\":410}"
        );
    }
}
