//! Where a sandbox's ports are reached, for port-forward: the node's network for a sandbox
//! in it, else the network namespace of the sandbox's process, from containerd's verbose
//! sandbox status.

use std::collections::HashMap;
use std::path::PathBuf;

use super::super::{PodPorts, RuntimeError};
use super::{CriRuntime, api};

impl CriRuntime {
    /// The sandbox of pod `namespace/pod` this agent knows, and whether it is in the node's
    /// network.
    pub(super) fn sandbox_of(&self, namespace: &str, pod: &str) -> Option<(String, bool)> {
        let book = self.book();
        book.sandboxes
            .iter()
            .find(|(_, s)| {
                s.config
                    .metadata
                    .as_ref()
                    .is_some_and(|m| m.namespace == namespace && m.name == pod)
            })
            .map(|(id, s)| {
                let host = s
                    .config
                    .linux
                    .as_ref()
                    .and_then(|l| l.security_context.as_ref())
                    .and_then(|c| c.namespace_options.as_ref())
                    .is_some_and(|o| o.network == api::NamespaceMode::Node as i32);
                (id.clone(), host)
            })
    }

    /// Where the ports of sandbox `id` are reached.
    pub(super) async fn ports_of(&self, id: &str, host: bool) -> Result<PodPorts, RuntimeError> {
        if host {
            return Ok(PodPorts::Host);
        }
        let info = self.client.pod_sandbox_info(id).await?;
        netns_of(&info).map(PodPorts::Namespace).ok_or_else(|| {
            RuntimeError::Failed(format!(
                "the runtime does not say where the network namespace of sandbox {id} is"
            ))
        })
    }
}

/// The network namespace of a sandbox from containerd's verbose status (`info`: JSON with
/// the sandbox's `pid` and its `runtimeSpec`): the namespace of its process when it runs,
/// else the path its spec names.
fn netns_of(info: &HashMap<String, String>) -> Option<PathBuf> {
    let parsed: serde_json::Value = serde_json::from_str(info.get("info")?).ok()?;
    if let Some(pid) = parsed["pid"].as_u64().filter(|p| *p > 0) {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        if path.exists() {
            return Some(path);
        }
    }
    parsed["runtimeSpec"]["linux"]["namespaces"]
        .as_array()?
        .iter()
        .find(|ns| ns["type"] == "network")
        .and_then(|ns| ns["path"].as_str())
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}
