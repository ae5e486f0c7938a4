//! List: pages with `limit` and `continue`, label and field selectors, and the response shapes
//! clients ask for (the object list, a Table, a `PartialObjectMetadataList`).
//!
//! A continue token carries the revision of the list's first page and the key of the last item
//! sent. Every page of one list reports that first revision, so a watch started from the
//! list's resourceVersion sees every change made while the pages were read (at least once).
//! A token whose revision has been compacted away answers 410 Expired, with a fresh token in
//! the Status' `metadata.continue` that goes on at the current revision, as Kubernetes does.
//! Lists without selectors carry `remainingItemCount` when more remain.

use axum::body::Body;
use axum::http::{Response, StatusCode};
use base64::Engine as _;
use ferry_schema::selector::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

use super::catalog::storage_resource;
use super::request::{Shape, json_response};
use super::resource::Call;
use super::status::ApiError;
use crate::storage::{ObjectKey, StorageError};

/// Items fetched from storage per round while filtering.
const PAGE: usize = 500;

/// Where a list goes on: the revision of its first page and the last key sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continue {
    /// The revision of the first page; -1 goes on at the current revision.
    pub revision: i64,
    /// Namespace of the last item sent.
    pub namespace: String,
    /// Name of the last item sent.
    pub name: String,
}

impl Continue {
    /// The opaque token clients send back.
    pub fn encode(&self) -> String {
        let text =
            json!({"rv": self.revision, "ns": self.namespace, "name": self.name}).to_string();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// Reads a token; 400 when it is not one of ours.
    pub fn decode(token: &str) -> Result<Continue, ApiError> {
        let bad = || ApiError::bad_request("continue key is not valid: malformed token");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| bad())?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        match (
            value["rv"].as_i64(),
            value["ns"].as_str(),
            value["name"].as_str(),
        ) {
            (Some(revision), Some(ns), Some(name)) if revision >= -1 => Ok(Continue {
                revision,
                namespace: ns.to_owned(),
                name: name.to_owned(),
            }),
            _ => Err(bad()),
        }
    }

    /// The token of a page that stopped after `last`, for a list read at `revision`; none when
    /// nothing follows.
    fn token(revision: i64, last: Option<(String, String)>) -> Option<String> {
        last.map(|(namespace, name)| {
            Continue {
                revision,
                namespace,
                name,
            }
            .encode()
        })
    }

    fn cursor(&self) -> (&str, &str) {
        (&self.namespace, &self.name)
    }
}

/// The message of a 410 for a continue token older than the change log.
const INCONSISTENT_CONTINUE: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// The request's label and field selectors.
pub fn selectors(call: &Call<'_>) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(call.q("labelSelector").unwrap_or_default())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fields = FieldSelector::parse(call.q("fieldSelector").unwrap_or_default(), call.kind.kind)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((labels, fields))
}

/// One page of a selected list.
pub struct Selected<T = Value> {
    /// The matching objects (parsed, or as stored: see [`select_as`]).
    pub items: Vec<T>,
    /// The revision the first storage read was consistent at.
    pub revision: i64,
    /// The last key sent, when the limit stopped the page before the end.
    pub more_after: Option<(String, String)>,
}

/// Objects of the call's resource matching its selectors, after a cursor, at most `limit`
/// (0: all), parsed. See [`select_as`].
pub async fn select(
    call: &Call<'_>,
    limit: usize,
    after: Option<(String, String)>,
) -> Result<Selected, ApiError> {
    select_as(call, limit, after, |_, object| object).await
}

/// Objects of the call's resource matching its selectors, after a cursor, at most `limit`
/// (0: all), each kept as `keep` makes it from its stored text and its parsed form. Storage
/// is read [`PAGE`] items at a time and parsed one item at a time, so a list that keeps the
/// text holds no parsed object beyond the one being matched. When the limit stops it,
/// `more_after` is the last key sent.
pub async fn select_as<T>(
    call: &Call<'_>,
    limit: usize,
    mut after: Option<(String, String)>,
    mut keep: impl FnMut(String, Value) -> T,
) -> Result<Selected<T>, ApiError> {
    let (labels, fields) = selectors(call)?;
    let resource = storage_resource(call.kind);
    let mut items = Vec::new();
    let mut revision = None;
    loop {
        let cursor = after.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        let page = call
            .state
            .storage
            .list_raw(&resource, call.path.namespace.as_deref(), cursor, PAGE)
            .await
            .map_err(|e| call.storage_error(e))?;
        revision.get_or_insert(page.revision);
        let storage_has_more = page.more_after.is_some();
        let count = page.items.len();
        for (i, (namespace, name, _, body)) in page.items.into_iter().enumerate() {
            let object: Value = serde_json::from_str(&body).map_err(|e| {
                call.storage_error(StorageError::Corrupt(
                    ObjectKey::new(resource.as_str(), namespace.as_str(), name.as_str()),
                    e.to_string(),
                ))
            })?;
            after = Some((namespace, name));
            if labels.matches(&object["metadata"]["labels"]) && fields.matches(&object) {
                items.push(keep(body, object));
                if limit > 0 && items.len() == limit {
                    let more = i + 1 < count || storage_has_more;
                    return Ok(Selected {
                        items,
                        revision: revision.unwrap_or_default(),
                        more_after: if more { after } else { None },
                    });
                }
            }
        }
        if !storage_has_more {
            return Ok(Selected {
                items,
                revision: revision.unwrap_or_default(),
                more_after: None,
            });
        }
    }
}

/// The list's `metadata`.
fn list_meta(revision: i64, token: Option<String>, remaining: Option<i64>) -> Value {
    let mut metadata = json!({"resourceVersion": revision.to_string()});
    if let Some(token) = token {
        metadata["continue"] = json!(token);
    }
    if let Some(remaining) = remaining {
        metadata["remainingItemCount"] = json!(remaining);
    }
    metadata
}

/// What the request asks for: where to start, how many, at which revision.
struct Request {
    limit: usize,
    from: Option<Continue>,
    filtered: bool,
}

impl Request {
    /// The revision the list is read at: its first page's, carried by the continue token, or
    /// `first` (what this page read) for a first page or a token that goes on at the current
    /// revision.
    fn revision(&self, first: i64) -> i64 {
        match &self.from {
            Some(c) if c.revision >= 0 => c.revision,
            _ => first,
        }
    }

    fn parse(call: &Call<'_>) -> Result<Request, ApiError> {
        let limit = match call.q("limit") {
            Some(l) => l
                .parse::<usize>()
                .map_err(|_| ApiError::bad_request("limit must be a non-negative integer"))?,
            None => 0,
        };
        let from = call
            .q("continue")
            .filter(|t| !t.is_empty())
            .map(Continue::decode)
            .transpose()?;
        let filtered = call.q("labelSelector").is_some_and(|s| !s.is_empty())
            || call.q("fieldSelector").is_some_and(|s| !s.is_empty());
        Ok(Request {
            limit,
            from,
            filtered,
        })
    }
}

/// Serves a list request.
pub async fn list(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let request = Request::parse(call)?;
    if let Some(from) = &request.from
        && from.revision >= 0
    {
        let compacted = call
            .state
            .storage
            .compacted()
            .await
            .map_err(|e| call.storage_error(e))?;
        if from.revision < compacted {
            let fresh = Continue {
                revision: -1,
                ..from.clone()
            };
            let mut error = ApiError::expired(INCONSISTENT_CONTINUE);
            error.continue_token = Some(fresh.encode());
            return Err(error);
        }
    }
    let shape = Shape::of(&call.headers);
    // Custom resources are stored once for all their versions: passed through as stored only
    // when their CRD serves one version (so the stored apiVersion is the one asked for).
    let single_version = call
        .custom()
        .is_none_or(|custom| call.state.admission.crds().of_crd(&custom.crd).len() == 1);
    if !request.filtered && shape == Shape::Object && single_version {
        return passthrough(call, &request).await;
    }
    let after = request
        .from
        .as_ref()
        .map(|c| (c.namespace.clone(), c.name.clone()));
    if shape == Shape::Object && single_version {
        // Selected objects go out as stored: each is parsed only to match it, one at a time.
        let selected = select_as(call, request.limit, after, |body, _| body).await?;
        let revision = request.revision(selected.revision);
        let token = Continue::token(revision, selected.more_after);
        let items = selected.items.join(",");
        return Ok(object_list(call, list_meta(revision, token, None), &items));
    }
    let selected = select(call, request.limit, after).await?;
    let revision = request.revision(selected.revision);
    let remaining = match (&selected.more_after, request.filtered) {
        (Some((ns, name)), false) => Some(
            call.state
                .storage
                .count_after(
                    &storage_resource(call.kind),
                    call.path.namespace.as_deref(),
                    (ns, name),
                )
                .await
                .map_err(|e| call.storage_error(e))?,
        ),
        _ => None,
    };
    let token = Continue::token(revision, selected.more_after);
    let rv = revision.to_string();
    let body = match shape {
        Shape::Table => {
            let mut t = call.table(&selected.items, &rv, token.as_deref());
            if let Some(remaining) = remaining {
                t["metadata"]["remainingItemCount"] = json!(remaining);
            }
            t
        }
        Shape::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": list_meta(revision, token, remaining),
            "items": selected.items.iter().map(partial_metadata).collect::<Vec<_>>(),
        }),
        Shape::Object => json!({
            "kind": format!("{}List", call.kind.kind),
            "apiVersion": call.kind.api_version(),
            "metadata": list_meta(revision, token, remaining),
            "items": selected.items.into_iter().map(|o| call.present(o)).collect::<Vec<_>>(),
        }),
    };
    Ok(json_response(StatusCode::OK, &body, &[]))
}

/// An object as `PartialObjectMetadata`: its metadata only.
pub fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object["metadata"].clone(),
    })
}

/// A list passed through as stored: no selectors and the plain shape, so no body is parsed;
/// the database joins the bodies into one text.
async fn passthrough(call: &Call<'_>, request: &Request) -> Result<Response<Body>, ApiError> {
    let resource = storage_resource(call.kind);
    let namespace = call.path.namespace.as_deref();
    let cursor = request.from.as_ref().map(Continue::cursor);
    let storage = &call.state.storage;
    let page = storage
        .list_joined(&resource, namespace, cursor, request.limit)
        .await
        .map_err(|e| call.storage_error(e))?;
    let revision = request.revision(page.revision);
    let (token, remaining) = match page.more_after {
        Some((ns, name)) => {
            let remaining = storage
                .count_after(&resource, namespace, (&ns, &name))
                .await
                .map_err(|e| call.storage_error(e))?;
            let token = Continue {
                revision,
                namespace: ns,
                name,
            }
            .encode();
            (Some(token), Some(remaining))
        }
        None => (None, None),
    };
    Ok(object_list(
        call,
        list_meta(revision, token, remaining),
        &page.items,
    ))
}

/// An object list whose items are stored JSON texts, `items` joined with commas.
fn object_list(call: &Call<'_>, metadata: Value, items: &str) -> Response<Body> {
    let mut out = String::with_capacity(items.len() + 256);
    out.push_str(&format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{metadata},\"items\":[",
        json!(format!("{}List", call.kind.kind)),
        json!(call.kind.api_version())
    ));
    out.push_str(items);
    out.push_str("]}");
    let mut response = Response::new(Body::from(out));
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let token = Continue {
            revision: 42,
            namespace: "default".into(),
            name: "web-1".into(),
        };
        assert_eq!(Continue::decode(&token.encode()).expect("decodes"), token);
        assert!(Continue::decode("zz").is_err());
        assert!(Continue::decode("").is_err());
        let negative = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"rv":-7,"ns":"","name":"a"}"#);
        assert!(Continue::decode(&negative).is_err());
    }
}
