//! `sim`: a hollow node's runtime (the role of KWOK and kubemark). Nothing runs; a container
//! is Running once started, Ready after the start delay (unless the pod says
//! `sim.ferry.dev/ready: "false"`), and, in a pod whose restartPolicy is not Always, exits
//! after the run time (the node's, or the pod's `sim.ferry.dev/run-time`) with code 0 or the
//! pod's `sim.ferry.dev/exit-code`. Time is tokio's, so
//! tests run it on paused time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use tokio::time::Instant;

use super::{
    ContainerConfig, ContainerState, ContainerStatus, Runtime, RuntimeError, SandboxConfig,
    SandboxInfo,
};

/// How long a hollow container takes to stop (at most its grace period).
const STOP_TIME: Duration = Duration::from_millis(200);

/// The annotation with a hollow pod's exit code.
pub const EXIT_CODE_ANNOTATION: &str = "sim.ferry.dev/exit-code";
/// The annotation with a hollow pod's run time (Go's form, `30s`), instead of the node's.
pub const RUN_TIME_ANNOTATION: &str = "sim.ferry.dev/run-time";
/// The annotation that keeps a hollow pod unready (`"false"`).
pub const READY_ANNOTATION: &str = "sim.ferry.dev/ready";

/// How hollow containers behave.
#[derive(Debug, Clone, Copy)]
pub struct SimTimings {
    /// From start to Ready.
    pub start_delay: Duration,
    /// From start to exit, in pods that are not restarted.
    pub run_time: Duration,
}

impl Default for SimTimings {
    fn default() -> SimTimings {
        SimTimings {
            start_delay: Duration::from_millis(100),
            run_time: Duration::from_secs(1),
        }
    }
}

#[derive(Debug)]
struct Sandbox {
    config: SandboxConfig,
    ip: String,
    ready: bool,
}

#[derive(Debug)]
struct Container {
    sandbox: String,
    config: ContainerConfig,
    started: Option<(Instant, String)>,
    /// When and how it ends by itself.
    exits: Option<(Instant, i32)>,
    stopped: Option<(String, i32, String)>,
}

#[derive(Debug, Default)]
struct State {
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    next: u64,
    next_ip: u32,
}

/// One hollow node's runtime.
#[derive(Debug)]
pub struct SimRuntime {
    timings: SimTimings,
    /// `10.244.N.` : the node's pod CIDR prefix.
    ip_prefix: String,
    state: Mutex<State>,
}

fn rfc3339_now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn poisoned() -> RuntimeError {
    RuntimeError::Failed("the sim runtime's state is poisoned".into())
}

impl SimRuntime {
    /// A runtime handing out IPs from `pod_cidr` (`10.244.3.0/24`).
    pub fn new(pod_cidr: &str, timings: SimTimings) -> SimRuntime {
        let prefix = pod_cidr
            .split('/')
            .next()
            .and_then(|ip| ip.rsplit_once('.'))
            .map(|(p, _)| format!("{p}."))
            .unwrap_or_else(|| "10.244.0.".into());
        SimRuntime {
            timings,
            ip_prefix: prefix,
            state: Mutex::new(State::default()),
        }
    }

    /// Readiness as a hollow node reports it: ready after the start delay while running,
    /// unless the pod says otherwise; with the time it becomes ready.
    pub fn ready(&self, id: &str) -> (bool, Option<Instant>) {
        let Ok(state) = self.state.lock() else {
            return (false, None);
        };
        let Some(c) = state.containers.get(id) else {
            return (false, None);
        };
        let unready = state
            .sandboxes
            .get(&c.sandbox)
            .and_then(|s| s.config.annotations.get(READY_ANNOTATION))
            .is_some_and(|v| v == "false");
        match (&c.started, &c.stopped) {
            (Some((at, _)), None) if !unready => {
                let ready_at = *at + self.timings.start_delay;
                let running = c.exits.is_none_or(|(end, _)| Instant::now() < end);
                (running && Instant::now() >= ready_at, Some(ready_at))
            }
            _ => (false, None),
        }
    }

    fn status_of(id: &str, c: &Container) -> ContainerStatus {
        let now = Instant::now();
        let state = match (&c.started, &c.stopped, c.exits) {
            (_, Some((finished, code, reason)), _) => ContainerState::Exited {
                started_at: c.started.as_ref().map(|s| s.1.clone()).unwrap_or_default(),
                finished_at: finished.clone(),
                exit_code: *code,
                reason: reason.clone(),
            },
            (Some((_, started)), None, Some((end, code))) if now >= end => ContainerState::Exited {
                started_at: started.clone(),
                finished_at: rfc3339_now(),
                exit_code: code,
                reason: if code == 0 { "Completed" } else { "Error" }.into(),
            },
            (Some((_, started)), None, _) => ContainerState::Running {
                started_at: started.clone(),
            },
            (None, None, _) => ContainerState::Created,
        };
        let changes_at = match (&state, c.exits) {
            (ContainerState::Running { .. }, Some((end, _))) => Some(end),
            _ => None,
        };
        ContainerStatus {
            id: id.to_owned(),
            name: c.config.name.clone(),
            image: c.config.image.clone(),
            state,
            changes_at,
            log_path: None,
            image_ref: None,
        }
    }
}

impl Runtime for SimRuntime {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn run_pod_sandbox(
        &self,
        config: SandboxConfig,
    ) -> BoxFuture<'_, Result<SandboxInfo, RuntimeError>> {
        let result = (|| {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            state.next += 1;
            state.next_ip = state.next_ip % 250 + 1;
            let id = format!("sim-sandbox-{}", state.next);
            let ip = format!("{}{}", self.ip_prefix, state.next_ip + 1);
            let info = SandboxInfo {
                id: id.clone(),
                pod_uid: config.uid.clone(),
                ip: ip.clone(),
                ready: true,
            };
            state.sandboxes.insert(
                id,
                Sandbox {
                    config,
                    ip,
                    ready: true,
                },
            );
            Ok(info)
        })();
        async move { result }.boxed()
    }

    fn stop_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let result = (|| {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            let Some(sandbox) = state.sandboxes.get_mut(id) else {
                return Err(RuntimeError::NotFound(id.to_owned()));
            };
            sandbox.ready = false;
            let stamp = rfc3339_now();
            let now = Instant::now();
            for c in state.containers.values_mut().filter(|c| c.sandbox == id) {
                if c.stopped.is_none() && c.started.is_some() {
                    // One that has already run its course keeps its own end; one still
                    // running is killed.
                    c.stopped = Some(match c.exits {
                        Some((end, code)) if now >= end => {
                            let reason = if code == 0 { "Completed" } else { "Error" };
                            (stamp.clone(), code, reason.into())
                        }
                        _ => (stamp.clone(), 137, "Error".into()),
                    });
                }
            }
            Ok(())
        })();
        async move { result }.boxed()
    }

    fn remove_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let result = self.state.lock().map_err(|_| poisoned()).map(|mut state| {
            state.sandboxes.remove(id);
            state.containers.retain(|_, c| c.sandbox != id);
        });
        async move { result }.boxed()
    }

    fn list_pod_sandboxes(&self) -> BoxFuture<'_, Result<Vec<SandboxInfo>, RuntimeError>> {
        let result = self.state.lock().map_err(|_| poisoned()).map(|state| {
            state
                .sandboxes
                .iter()
                .map(|(id, s)| SandboxInfo {
                    id: id.clone(),
                    pod_uid: s.config.uid.clone(),
                    ip: s.ip.clone(),
                    ready: s.ready,
                })
                .collect()
        });
        async move { result }.boxed()
    }

    fn create_container(
        &self,
        sandbox: &str,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<String, RuntimeError>> {
        let result = (|| {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            if !state.sandboxes.contains_key(sandbox) {
                return Err(RuntimeError::NotFound(sandbox.to_owned()));
            }
            state.next += 1;
            let id = format!("sim-container-{}", state.next);
            state.containers.insert(
                id.clone(),
                Container {
                    sandbox: sandbox.to_owned(),
                    config,
                    started: None,
                    exits: None,
                    stopped: None,
                },
            );
            Ok(id)
        })();
        async move { result }.boxed()
    }

    fn start_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let result = (|| {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            let sandbox = match state.containers.get(id) {
                Some(c) => c.sandbox.clone(),
                None => return Err(RuntimeError::NotFound(id.to_owned())),
            };
            let (restart, code, run_time) = state
                .sandboxes
                .get(&sandbox)
                .map(|s| {
                    let annotations = &s.config.annotations;
                    let code = annotations
                        .get(EXIT_CODE_ANNOTATION)
                        .and_then(|c| c.parse::<i32>().ok())
                        .unwrap_or(0);
                    let run_time = annotations
                        .get(RUN_TIME_ANNOTATION)
                        .and_then(|d| ferry_schema::duration::parse(d).ok())
                        .unwrap_or(self.timings.run_time);
                    (s.config.restart_policy.clone(), code, run_time)
                })
                .unwrap_or_default();
            let now = Instant::now();
            if let Some(c) = state.containers.get_mut(id) {
                c.started = Some((now, rfc3339_now()));
                c.stopped = None;
                c.exits = if c.config.init {
                    // Init containers finish at once, successfully.
                    Some((now, 0))
                } else if restart != "Always" {
                    Some((now + run_time, code))
                } else {
                    None
                };
            }
            Ok(())
        })();
        async move { result }.boxed()
    }

    fn stop_container(&self, id: &str, grace: Duration) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let result = (|| {
            let mut state = self.state.lock().map_err(|_| poisoned())?;
            let c = state
                .containers
                .get_mut(id)
                .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
            if c.stopped.is_none() {
                c.stopped = Some((rfc3339_now(), 0, "Completed".into()));
            }
            Ok(())
        })();
        async move {
            // A stop is never instant on a real node; a hollow one takes a little time too
            // (within the grace period), so that a client waiting for a deletion (kubectl
            // delete lists, then watches) sees the pod go rather than only its successor.
            tokio::time::sleep(STOP_TIME.min(grace)).await;
            result
        }
        .boxed()
    }

    fn remove_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let result = self.state.lock().map_err(|_| poisoned()).map(|mut state| {
            state.containers.remove(id);
        });
        async move { result }.boxed()
    }

    fn container_status(&self, id: &str) -> BoxFuture<'_, Result<ContainerStatus, RuntimeError>> {
        let result = (|| {
            let state = self.state.lock().map_err(|_| poisoned())?;
            let c = state
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(id.to_owned()))?;
            Ok(SimRuntime::status_of(id, c))
        })();
        async move { result }.boxed()
    }

    fn readiness(&self, id: &str) -> Option<(bool, Option<Instant>)> {
        Some(self.ready(id))
    }

    fn exec_sync(
        &self,
        id: &str,
        _command: Vec<String>,
        _timeout: Duration,
    ) -> BoxFuture<'_, Result<(i32, String), RuntimeError>> {
        let result = match self.state.lock() {
            Ok(state) if state.containers.contains_key(id) => Ok((0, String::new())),
            Ok(_) => Err(RuntimeError::NotFound(id.to_owned())),
            Err(_) => Err(poisoned()),
        };
        async move { result }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(restart: &str, annotations: &[(&str, &str)]) -> SandboxConfig {
        SandboxConfig {
            name: "p".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            restart_policy: restart.into(),
            host_network: false,
        }
    }

    fn container() -> ContainerConfig {
        ContainerConfig {
            name: "c".into(),
            image: "busybox".into(),
            command: Vec::new(),
            image_entrypoint: false,
            stdin: false,
            stdin_once: false,
            tty: false,
            init: false,
            env: Vec::new(),
            working_dir: None,
            mounts: Vec::new(),
            limits: Default::default(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_pod_may_say_how_long_it_runs() {
        let rt = SimRuntime::new("10.244.7.0/24", SimTimings::default());
        let sb = rt
            .run_pod_sandbox(sandbox("Never", &[(RUN_TIME_ANNOTATION, "1m")]))
            .await
            .expect("sandbox");
        let id = rt
            .create_container(&sb.id, container())
            .await
            .expect("create");
        rt.start_container(&id).await.expect("start");
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(matches!(
            rt.container_status(&id).await.expect("status").state,
            ContainerState::Running { .. }
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(matches!(
            rt.container_status(&id).await.expect("status").state,
            ContainerState::Exited { exit_code: 0, .. }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn hollow_containers_run_become_ready_and_exit_on_paused_time() {
        let rt = SimRuntime::new("10.244.7.0/24", SimTimings::default());
        let sb = rt
            .run_pod_sandbox(sandbox("Never", &[(EXIT_CODE_ANNOTATION, "3")]))
            .await
            .expect("sandbox");
        assert_eq!(sb.ip, "10.244.7.2");
        let id = rt
            .create_container(&sb.id, container())
            .await
            .expect("create");
        rt.start_container(&id).await.expect("start");
        assert!(matches!(
            rt.container_status(&id).await.expect("status").state,
            ContainerState::Running { .. }
        ));
        assert!(!rt.ready(&id).0);
        tokio::time::advance(Duration::from_millis(150)).await;
        assert!(rt.ready(&id).0, "ready after the start delay");
        tokio::time::advance(Duration::from_secs(1)).await;
        match rt.container_status(&id).await.expect("status").state {
            ContainerState::Exited {
                exit_code, reason, ..
            } => {
                assert_eq!(exit_code, 3);
                assert_eq!(reason, "Error");
            }
            other => panic!("{other:?}"),
        }
        // A pod kept unready, restarted always: runs on, never ready.
        let sb = rt
            .run_pod_sandbox(sandbox("Always", &[(READY_ANNOTATION, "false")]))
            .await
            .expect("sandbox");
        let id = rt
            .create_container(&sb.id, container())
            .await
            .expect("create");
        rt.start_container(&id).await.expect("start");
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(!rt.ready(&id).0);
        assert!(matches!(
            rt.container_status(&id).await.expect("status").state,
            ContainerState::Running { .. }
        ));
    }
}
