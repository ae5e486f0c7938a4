//! The pod status a node agent writes, as the kubelet writes it: phase, conditions,
//! container statuses, IPs and start time.

use serde_json::{Value, json};

use crate::runtime::{ContainerState, ContainerStatus};

/// One container as the status reports it.
#[derive(Debug, Clone)]
pub struct ContainerReport {
    /// Name.
    pub name: String,
    /// Image.
    pub image: String,
    /// The runtime's status, when the container exists.
    pub status: Option<ContainerStatus>,
    /// Ready (probes or the runtime say so).
    pub ready: bool,
    /// Restarts so far.
    pub restarts: u32,
    /// Why it is waiting when it does not run (`ContainerCreating`, `CrashLoopBackOff`,
    /// `PodInitializing`).
    pub waiting: Option<(String, String)>,
    /// The last time it ended, when it was restarted since.
    pub last: Option<ContainerState>,
}

fn state_json(state: &ContainerState) -> Value {
    match state {
        ContainerState::Created => json!({"waiting": {"reason": "ContainerCreating"}}),
        ContainerState::Running { started_at } => json!({"running": {"startedAt": started_at}}),
        ContainerState::Exited {
            started_at,
            finished_at,
            exit_code,
            reason,
        } => json!({"terminated": {
            "exitCode": exit_code, "reason": reason,
            "startedAt": started_at, "finishedAt": finished_at,
        }}),
    }
}

impl ContainerReport {
    /// The `containerStatuses` entry.
    pub fn to_json(&self, runtime: &str) -> Value {
        let state = match (&self.waiting, &self.status) {
            (Some((reason, message)), _) => {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                json!({"waiting": w})
            }
            (None, Some(s)) => state_json(&s.state),
            (None, None) => json!({"waiting": {"reason": "ContainerCreating"}}),
        };
        let running = matches!(
            self.status.as_ref().map(|s| &s.state),
            Some(ContainerState::Running { .. })
        ) && self.waiting.is_none();
        let mut out = json!({
            "name": self.name,
            "image": self.image,
            "imageID": self
                .status
                .as_ref()
                .and_then(|s| s.image_ref.clone())
                .unwrap_or_else(|| format!("{runtime}://{}", self.image)),
            "ready": self.ready,
            "started": running,
            "restartCount": self.restarts,
            "state": state,
            "lastState": self.last.as_ref().map(state_json).unwrap_or_else(|| json!({})),
        });
        if let Some(s) = &self.status {
            out["containerID"] = json!(format!("{runtime}://{}", s.id));
        }
        out
    }

    /// Whether it ended, with its exit code.
    pub fn exit_code(&self) -> Option<i32> {
        match self.status.as_ref().map(|s| &s.state) {
            Some(ContainerState::Exited { exit_code, .. }) if self.waiting.is_none() => {
                Some(*exit_code)
            }
            _ => None,
        }
    }
}

/// Everything the status is computed from.
#[derive(Debug, Clone)]
pub struct PodReport {
    /// The sandbox's IP, once it exists.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: String,
    /// When the agent first started the pod.
    pub start_time: String,
    /// Init containers, in order.
    pub init: Vec<ContainerReport>,
    /// Whether every init container completed.
    pub initialized: bool,
    /// App containers.
    pub containers: Vec<ContainerReport>,
    /// Whether containers that end are restarted (`Always`, or `OnFailure` after a failure).
    pub restart_policy: String,
    /// The runtime's name (`sim`), for container ids.
    pub runtime: String,
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, at: &str) -> Value {
    let mut c = json!({"type": type_, "status": if ok { "True" } else { "False" }, "lastTransitionTime": at, "lastProbeTime": null});
    if let Some(r) = reason {
        c["reason"] = json!(r);
    }
    c
}

impl PodReport {
    /// The pod's phase.
    pub fn phase(&self) -> &'static str {
        let codes: Vec<Option<i32>> = self
            .containers
            .iter()
            .map(ContainerReport::exit_code)
            .collect();
        let running = self.containers.iter().any(|c| {
            matches!(
                c.status.as_ref().map(|s| &s.state),
                Some(ContainerState::Running { .. })
            ) || c
                .waiting
                .as_ref()
                .is_some_and(|(r, _)| r == "CrashLoopBackOff")
        });
        if self.pod_ip.is_none() || !self.initialized {
            return "Pending";
        }
        if !codes.is_empty() && codes.iter().all(Option::is_some) {
            let failed = codes.iter().flatten().any(|c| *c != 0);
            return match (self.restart_policy.as_str(), failed) {
                ("Always", _) => "Running",
                ("OnFailure", true) => "Running",
                (_, true) => "Failed",
                (_, false) => "Succeeded",
            };
        }
        if running || codes.iter().any(Option::is_some) {
            "Running"
        } else {
            "Pending"
        }
    }

    /// The `status` to write. `previous` is the status the pod has: a condition keeps its
    /// transition time while its value does not change.
    pub fn to_json(&self, previous: &Value) -> Value {
        let now = jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let phase = self.phase();
        let ready = phase == "Running" && self.containers.iter().all(|c| c.ready);
        let not_ready = (!ready).then_some("ContainersNotReady");
        let mut conditions = vec![
            condition(
                "PodReadyToStartContainers",
                self.pod_ip.is_some(),
                None,
                &now,
            ),
            condition(
                "Initialized",
                self.initialized,
                (!self.initialized).then_some("ContainersNotInitialized"),
                &now,
            ),
            condition("Ready", ready, not_ready, &now),
            condition("ContainersReady", ready, not_ready, &now),
            condition("PodScheduled", true, None, &now),
        ];
        if matches!(phase, "Succeeded" | "Failed") {
            // A finished pod is not ready, and says why, as the kubelet does.
            conditions[2]["reason"] = json!("PodCompleted");
            conditions[3]["reason"] = json!("PodCompleted");
        }
        for c in &mut conditions {
            if let Some(old) = previous["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|o| o["type"] == c["type"] && o["status"] == c["status"])
                && let Some(at) = old.get("lastTransitionTime").filter(|v| v.is_string())
            {
                c["lastTransitionTime"] = at.clone();
            }
        }
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.host_ip,
            "hostIPs": [{"ip": self.host_ip}],
            "startTime": self.start_time,
            "containerStatuses": self.containers.iter().map(|c| c.to_json(&self.runtime)).collect::<Vec<_>>(),
        });
        if !self.init.is_empty() {
            status["initContainerStatuses"] = json!(
                self.init
                    .iter()
                    .map(|c| c.to_json(&self.runtime))
                    .collect::<Vec<_>>()
            );
        }
        if let Some(ip) = &self.pod_ip {
            status["podIP"] = json!(ip);
            status["podIPs"] = json!([{"ip": ip}]);
        }
        if let Some(q) = previous.get("qosClass") {
            status["qosClass"] = q.clone();
        }
        status
    }
}
