//! `pods/log`: a container's log, read from the node the pod runs on. The apiserver checks the
//! request against the pod (the container must be one of its own; a pod with several needs
//! `container`), then streams the answer of the node's kubelet endpoint
//! (`http://<InternalIP>:<kubeletEndpoint port>/containerLogs/...`) through, `follow`
//! included; the node's refusals come back as `Status` errors.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::resource::Call;
use super::status::ApiError;
use crate::storage::ObjectKey;

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

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// The container a request means: the one named, or the pod's only one.
fn container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
    let app = names(pod, "containers");
    let init = names(pod, "initContainers");
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if app.iter().chain(init.iter()).any(|n| n == c) => Ok(c.to_owned()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None if app.len() == 1 => Ok(app[0].clone()),
        None => {
            let mut message = format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                app.join(" ")
            );
            if !init.is_empty() {
                message.push_str(&format!(
                    " or one of the init containers: [{}]",
                    init.join(" ")
                ));
            }
            Err(ApiError::bad_request(message))
        }
    }
}

/// Where the node's kubelet endpoint answers.
fn endpoint(node: &Value) -> Option<(String, u64)> {
    let address = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_owned();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?;
    Some((address, port))
}

/// `GET pods/NAME/log`.
pub async fn log(call: &Call<'_>, name: &str) -> Result<Response<Body>, ApiError> {
    let pod = call
        .state
        .storage
        .get(&call.key(name))
        .await
        .map_err(|e| call.storage_error(e))?
        .ok_or_else(|| ApiError::not_found("", "pods", name))?
        .object;
    let namespace = call.path.namespace.clone().unwrap_or_default();
    let container = container(&pod, name, call.q("container"))?;
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let node = call
        .state
        .storage
        .get(&ObjectKey::new("nodes", "", node_name))
        .await
        .map_err(|e| call.storage_error(e))?
        .ok_or_else(|| ApiError::not_found("", "nodes", node_name))?
        .object;
    let (address, port) = endpoint(&node).ok_or_else(|| {
        ApiError::internal(format!("node {node_name} reports no kubelet endpoint"))
    })?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(FORWARDED.iter().filter_map(|k| call.q(k).map(|v| (*k, v))))
        .finish();
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let url = format!(
        "http://{address}:{port}/containerLogs/{}/{}/{}?{query}",
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
            "Get \"{url}\": the node {node_name} cannot be reached: {e}"
        ))
    })?;
    let code = answer.status();
    if code != StatusCode::OK {
        let text = answer
            .into_body()
            .collect()
            .await
            .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
            .unwrap_or_default();
        return Err(match code {
            StatusCode::NOT_FOUND => ApiError::new(404, "NotFound", text),
            StatusCode::BAD_REQUEST => ApiError::bad_request(text),
            _ => ApiError::internal(text),
        });
    }
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::new(answer.into_body()))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_container_is_the_named_one_or_the_only_one() {
        let one = json!({"spec": {"containers": [{"name": "web"}]}});
        assert_eq!(container(&one, "p", None).expect("only"), "web");
        let err = container(&one, "p", Some("db")).expect_err("not in the pod");
        assert_eq!(err.message, "container db is not valid for pod p");
        let two = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
            "initContainers": [{"name": "setup"}]}});
        let err = container(&two, "p", None).expect_err("ambiguous");
        assert_eq!(
            err.message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [setup]"
        );
        assert_eq!(container(&two, "p", Some("setup")).expect("init"), "setup");
    }
}
