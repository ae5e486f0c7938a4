//! `nodes/NAME/proxy/PATH`: a request passed as it is to the node's kubelet endpoint
//! (`http://<InternalIP>:<kubeletEndpoint port>/PATH?QUERY`), as `kubectl get --raw
//! /api/v1/nodes/NAME/proxy/healthz` or `.../proxy/containerLogs/NS/POD/CONTAINER` use it.
//! The method, the query, the body and the content headers go through; the node's answer
//! comes back whole (status, content type, a streamed body), refusals included.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, header, request::Parts};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::nodeproxy;
use super::status::ApiError;
use crate::storage::ObjectKey;

/// The request headers passed on to the node.
const FORWARDED: &[header::HeaderName] = &[header::ACCEPT, header::CONTENT_TYPE];

/// Passes `parts`/`body` to `path` on node `node`.
pub async fn proxy(
    state: &super::ApiState,
    node: &str,
    path: &str,
    parts: Parts,
    body: Body,
) -> Result<Response<Body>, ApiError> {
    let object = state
        .storage
        .get(&ObjectKey::new("nodes", "", node))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .ok_or_else(|| ApiError::not_found("", "nodes", node))?
        .object;
    let (address, port) = nodeproxy::endpoint(&object)
        .ok_or_else(|| ApiError::internal(format!("node {node} reports no kubelet endpoint")))?;
    let query = parts
        .uri
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let url = format!("http://{address}:{port}/{path}{query}");
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| ApiError::bad_request(format!("a node URL {url:?}: {e}")))?;
    let mut forward = axum::http::Request::builder()
        .method(parts.method.clone())
        .uri(uri);
    for name in FORWARDED {
        for value in parts.headers.get_all(name) {
            forward = forward.header(name, value);
        }
    }
    let forward = forward
        .body(body)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(connector);
    tracing::debug!(%node, %path, method = %parts.method, "proxying to a node");
    let answer = client.request(forward).await.map_err(|e| {
        ApiError::internal(format!(
            "error trying to reach service: the node {node} cannot be reached at {url}: {e}"
        ))
    })?;
    let mut response = Response::builder().status(answer.status());
    for name in [header::CONTENT_TYPE, header::CONTENT_LENGTH] {
        if let Some(value) = answer.headers().get(&name) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::new(answer.into_body()))
        .map_err(|e| ApiError::internal(e.to_string()))
}
