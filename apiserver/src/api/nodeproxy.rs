//! Finding where a pod's node agent answers, for the requests the apiserver passes to it
//! (`pods/log`, `pods/exec`): the pod, its node, and the node's kubelet endpoint
//! (`http://<InternalIP>:<kubeletEndpoint port>`); and the container a request means.

use serde_json::Value;

use super::resource::Call;
use super::status::ApiError;
use crate::storage::ObjectKey;

/// Where a node's kubelet endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeEndpoint {
    /// The node's name.
    pub name: String,
    /// Its InternalIP.
    pub address: String,
    /// Its kubelet endpoint's port.
    pub port: u64,
}

/// The node's refusal of a request passed to it (its status and plain-text body), as the
/// `Status` error the client gets.
pub async fn refusal(code: axum::http::StatusCode, body: hyper::body::Incoming) -> ApiError {
    use http_body_util::BodyExt;
    let text = body
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
        .unwrap_or_default();
    match code {
        axum::http::StatusCode::NOT_FOUND => ApiError::new(404, "NotFound", text),
        axum::http::StatusCode::BAD_REQUEST => ApiError::bad_request(text),
        _ => ApiError::internal(text),
    }
}

/// A path segment or query value, percent-encoded.
pub fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn names(pod: &Value, list: &str) -> Vec<String> {
    pod["spec"][list]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_owned))
        .collect()
}

/// The container a request means: the one named, or the pod's only one.
pub fn container(pod: &Value, name: &str, asked: Option<&str>) -> Result<String, ApiError> {
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
pub fn endpoint(node: &Value) -> Option<(String, u64)> {
    let address = node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_owned();
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64()?;
    Some((address, port))
}

/// The pod `name` of the call's namespace, and its node's endpoint.
pub async fn locate(call: &Call<'_>, name: &str) -> Result<(Value, NodeEndpoint), ApiError> {
    let pod = call
        .state
        .storage
        .get(&call.key(name))
        .await
        .map_err(|e| call.storage_error(e))?
        .ok_or_else(|| ApiError::not_found("", "pods", name))?
        .object;
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?
        .to_owned();
    let node = call
        .state
        .storage
        .get(&ObjectKey::new("nodes", "", &node_name))
        .await
        .map_err(|e| call.storage_error(e))?
        .ok_or_else(|| ApiError::not_found("", "nodes", &node_name))?
        .object;
    let (address, port) = endpoint(&node).ok_or_else(|| {
        ApiError::internal(format!("node {node_name} reports no kubelet endpoint"))
    })?;
    Ok((
        pod,
        NodeEndpoint {
            name: node_name,
            address,
            port,
        },
    ))
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
