//! `pods/log`: a container's log, read from the node the pod runs on. The apiserver checks the
//! request against the pod (the container must be one of its own; a pod with several needs
//! `container`), then streams the answer of the node's kubelet endpoint
//! (`http://<InternalIP>:<kubeletEndpoint port>/containerLogs/...`) through, `follow`
//! included; the node's refusals come back as `Status` errors.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::nodeproxy;
use super::resource::Call;
use super::status::ApiError;

/// The query parameters a log request passes on to the node.
const FORWARDED: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

/// `GET pods/NAME/log`.
pub async fn log(call: &Call<'_>, name: &str) -> Result<Response<Body>, ApiError> {
    let (pod, node) = nodeproxy::locate(call, name).await?;
    let namespace = call.path.namespace.clone().unwrap_or_default();
    let container = nodeproxy::container(&pod, name, call.q("container"))?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(FORWARDED.iter().filter_map(|k| call.q(k).map(|v| (*k, v))))
        .finish();
    let encode = nodeproxy::encode;
    let url = format!(
        "http://{}:{}/containerLogs/{}/{}/{}?{query}",
        node.address,
        node.port,
        encode(&namespace),
        encode(name),
        encode(&container)
    );
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|e| ApiError::internal(format!("a node URL {url:?}: {e}")))?;
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(5)));
    let client: Client<HttpConnector, Body> =
        Client::builder(TokioExecutor::new()).build(connector);
    let answer = client.get(uri).await.map_err(|e| {
        ApiError::internal(format!(
            "Get \"{url}\": the node {} cannot be reached: {e}",
            node.name
        ))
    })?;
    let code = answer.status();
    if code != StatusCode::OK {
        return Err(nodeproxy::refusal(code, answer.into_body()).await);
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::new(answer.into_body()))
        .map_err(|e| ApiError::internal(e.to_string()))
}
