//! `pods/exec`, `pods/attach` and `pods/portforward`: a command run in a pod's container
//! (`kubectl exec`, `kubectl cp`), the container's own streams (`kubectl attach`), or
//! connections to the pod's ports (`kubectl port-forward`). The apiserver checks the request
//! against the pod (the container must be its own; a finished pod runs nothing), then passes
//! the upgrade through to the node's kubelet endpoint (`/exec|attach/{namespace}/{pod}/{container}`,
//! `/portForward/{namespace}/{pod}`, [`super::nodeproxy`]) and, once the node has switched
//! protocols, splices the client's connection and the node's: the remote-command protocol
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io` over WebSocket) or `portforward.k8s.io` (SPDY/3.1,
//! by upgrade or tunnelled through a WebSocket) runs end to end between the client and the
//! node agent. The node's refusals come back as `Status` errors.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;

use super::nodeproxy;
use super::resource::Call;
use super::status::ApiError;

/// The request headers the upgrade needs at the node.
const UPGRADE_HEADERS: &[header::HeaderName] = &[
    header::CONNECTION,
    header::UPGRADE,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_VERSION,
    header::SEC_WEBSOCKET_PROTOCOL,
];

/// The header SPDY clients negotiate their stream protocol with.
const STREAM_PROTOCOL: &str = "x-stream-protocol-version";

/// How long reaching the node may take.
const CONNECT: Duration = Duration::from_secs(5);

fn unreachable(node: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!(
        "error dialing backend: the node {node} cannot be reached: {e}"
    ))
}

/// `GET pods/NAME/exec` or `pods/NAME/attach` (`verb`) with an upgrade to WebSocket.
pub async fn stream(
    call: &Call<'_>,
    name: &str,
    raw_query: &str,
    request: Request<Body>,
    verb: &str,
) -> Result<Response<Body>, ApiError> {
    let (pod, node) = nodeproxy::locate(call, name).await?;
    let container = nodeproxy::container(&pod, name, call.q("container"))?;
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        let what = if verb == "attach" {
            "attach to"
        } else {
            "exec into"
        };
        return Err(ApiError::bad_request(format!(
            "cannot {what} a container in a completed pod; current phase is {phase}"
        )));
    }
    // The pod and container are checked first: kubectl falls back to SPDY when an upgrade is
    // refused, and the refusal it prints is the second one.
    let wants_websocket = call
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !wants_websocket {
        return Err(ApiError::bad_request(format!(
            "Upgrade request required: pods/{verb} is served over WebSocket (v5.channel.k8s.io, v4.channel.k8s.io); SPDY is not"
        )));
    }
    let namespace = call.path.namespace.clone().unwrap_or_default();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(
            form_urlencoded::parse(raw_query.as_bytes()).filter(|(k, _)| k != "container"),
        )
        .finish();
    let uri = format!(
        "/{verb}/{}/{}/{}?{query}",
        nodeproxy::encode(&namespace),
        nodeproxy::encode(name),
        nodeproxy::encode(&container)
    );
    splice(call, &node, &namespace, name, uri, request, verb).await
}

/// `pods/NAME/portforward`, upgraded to SPDY/3.1 (`POST`) or to a WebSocket tunnelling it.
pub async fn port_forward(
    call: &Call<'_>,
    name: &str,
    raw_query: &str,
    request: Request<Body>,
) -> Result<Response<Body>, ApiError> {
    let (pod, node) = nodeproxy::locate(call, name).await?;
    if let Some(phase @ ("Succeeded" | "Failed")) = pod["status"]["phase"].as_str() {
        return Err(ApiError::bad_request(format!(
            "cannot port-forward to a completed pod; current phase is {phase}"
        )));
    }
    let upgrade = call
        .headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") && !upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        return Err(ApiError::bad_request(
            "Upgrade request required: pods/portforward is served over SPDY/3.1 or a WebSocket tunnelling it (SPDY/3.1+portforward.k8s.io)".to_owned(),
        ));
    }
    let namespace = call.path.namespace.clone().unwrap_or_default();
    let uri = format!(
        "/portForward/{}/{}?{raw_query}",
        nodeproxy::encode(&namespace),
        nodeproxy::encode(name),
    );
    splice(call, &node, &namespace, name, uri, request, "portforward").await
}

/// Passes the upgrade `request` on to `uri` at the node and, once both have switched
/// protocols, copies bytes between them until either ends.
async fn splice(
    call: &Call<'_>,
    node: &nodeproxy::NodeEndpoint,
    namespace: &str,
    name: &str,
    uri: String,
    mut request: Request<Body>,
    verb: &str,
) -> Result<Response<Body>, ApiError> {
    let stream = tokio::time::timeout(
        CONNECT,
        tokio::net::TcpStream::connect((node.address.as_str(), node.port as u16)),
    )
    .await
    .map_err(|_| unreachable(&node.name, "timed out"))?
    .map_err(|e| unreachable(&node.name, e))?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY could not be set towards the node");
    }
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(&node.name, e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "a node connection for a stream ended");
        }
    });
    let mut forward = Request::builder()
        .method(request.method().clone())
        .uri(uri)
        .header(header::HOST, format!("{}:{}", node.address, node.port));
    for header_name in UPGRADE_HEADERS {
        for value in call.headers.get_all(header_name) {
            forward = forward.header(header_name, value);
        }
    }
    for value in call.headers.get_all(STREAM_PROTOCOL) {
        forward = forward.header(STREAM_PROTOCOL, value);
    }
    let forward = forward
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut answer = sender
        .send_request(forward)
        .await
        .map_err(|e| unreachable(&node.name, e))?;
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        let code = answer.status();
        return Err(nodeproxy::refusal(code, answer.into_body()).await);
    }
    let from_client = hyper::upgrade::on(&mut request);
    let from_node = hyper::upgrade::on(&mut answer);
    let pod_name = format!("{namespace}/{name}");
    let verb = verb.to_owned();
    tokio::spawn(async move {
        match (from_client.await, from_node.await) {
            (Ok(client), Ok(node)) => {
                let (mut client, mut node) = (TokioIo::new(client), TokioIo::new(node));
                match tokio::io::copy_bidirectional(&mut client, &mut node).await {
                    Ok((up, down)) => {
                        tracing::debug!(pod = %pod_name, up, down, %verb, "a pod stream ended");
                    }
                    Err(e) => {
                        tracing::debug!(pod = %pod_name, error = %e, %verb, "a pod stream ended with an error");
                    }
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(pod = %pod_name, error = %e, %verb, "a pod stream's upgrade failed");
            }
        }
    });
    let mut response = Response::builder().status(StatusCode::SWITCHING_PROTOCOLS);
    for (name, value) in answer.headers() {
        response = response.header(name, value);
    }
    response
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}
