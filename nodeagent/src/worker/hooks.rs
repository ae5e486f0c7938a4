//! Container lifecycle hooks as the kubelet runs them: `postStart` right after a container
//! starts (a failure kills the container, which its restart policy then restarts, with a
//! `FailedPostStartHook` Event) and `preStop` before it is stopped (within the grace period,
//! which the stop then finishes; a failure is a `FailedPreStopHook` Event and the stop goes
//! on). A hook is an `exec` in the container, an `httpGet` against the pod, or a `sleep`.

use std::time::Duration;

use k8s_openapi::api::core::v1 as core;

use super::probe::{self, Action};
use crate::runtime::Runtime;

/// What a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// A probe-like action (exec or httpGet).
    Act(Action),
    /// Waits this long.
    Sleep(Duration),
}

/// The hook a handler describes, named ports resolved; `None` when it has no action.
pub fn of(handler: &core::LifecycleHandler, container: &core::Container) -> Option<Hook> {
    if let Some(exec) = &handler.exec {
        return Some(Hook::Act(Action::Exec(
            exec.command.clone().unwrap_or_default(),
        )));
    }
    if let Some(http) = &handler.http_get {
        return probe::http_action(http, container).ok().map(Hook::Act);
    }
    if let Some(sleep) = &handler.sleep {
        return Some(Hook::Sleep(
            Duration::from_secs(sleep.seconds.max(0) as u64),
        ));
    }
    None
}

/// Runs `hook` against container `id` of a pod at `ip`, for at most `within`.
pub async fn run(
    hook: &Hook,
    runtime: &dyn Runtime,
    id: &str,
    ip: &str,
    within: Duration,
) -> Result<(), String> {
    match hook {
        Hook::Sleep(d) => {
            tokio::time::sleep((*d).min(within)).await;
            Ok(())
        }
        Hook::Act(action) => probe::run(action, runtime, id, ip, within).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handlers_become_hooks() {
        let c: core::Container = serde_json::from_value(serde_json::json!({
            "name": "web", "ports": [{"name": "http", "containerPort": 8080}],
            "lifecycle": {
                "postStart": {"exec": {"command": ["touch", "ready"]}},
                "preStop": {"httpGet": {"path": "/quit", "port": "http"}}
            }
        }))
        .expect("container");
        let lifecycle = c.lifecycle.as_ref().expect("lifecycle");
        assert_eq!(
            of(lifecycle.post_start.as_ref().expect("postStart"), &c),
            Some(Hook::Act(Action::Exec(vec![
                "touch".into(),
                "ready".into()
            ])))
        );
        assert_eq!(
            of(lifecycle.pre_stop.as_ref().expect("preStop"), &c),
            Some(Hook::Act(Action::Http {
                host: None,
                port: 8080,
                path: "/quit".into(),
                headers: vec![]
            }))
        );
        let sleepy: core::LifecycleHandler =
            serde_json::from_value(serde_json::json!({"sleep": {"seconds": 2}})).expect("handler");
        assert_eq!(of(&sleepy, &c), Some(Hook::Sleep(Duration::from_secs(2))));
    }
}
