//! Container probes as the kubelet runs them: startup, liveness and readiness, each an `exec`
//! (through the runtime), an `httpGet` (2xx and 3xx succeed), a `tcpSocket` (a connection
//! succeeds) or a `grpc` health check ([`super::grpc_health`]), with Kubernetes' defaults (period 10 s, timeout 1 s,
//! success threshold 1, failure threshold 3, no initial delay). A startup probe gates the
//! others; readiness decides the container's `ready`; liveness (or startup) failures past the
//! threshold restart the container.

use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::runtime::Runtime;

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Gates the others until it succeeds once.
    Startup,
    /// Restarts the container when it fails.
    Liveness,
    /// Decides whether the container is ready.
    Readiness,
}

impl ProbeKind {
    /// As Events name it (`Liveness probe failed: ...`).
    pub fn label(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Runs a command in the container; exit code 0 succeeds.
    Exec(Vec<String>),
    /// GETs `path` on `host:port` (the pod's IP when no host is given).
    Http {
        /// `spec.httpGet.host`, or the pod IP.
        host: Option<String>,
        /// The port.
        port: u16,
        /// The path, with its query.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Opens a TCP connection.
    Tcp {
        /// `spec.tcpSocket.host`, or the pod IP.
        host: Option<String>,
        /// The port.
        port: u16,
    },
    /// A gRPC health check (`grpc.health.v1.Health/Check`).
    Grpc {
        /// The port.
        port: u16,
        /// The service asked about (empty: the server as a whole).
        service: String,
    },
}

/// A probe as configured, with Kubernetes' defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// What it does.
    pub action: Action,
    /// Wait before the first run.
    pub initial_delay: Duration,
    /// Between runs.
    pub period: Duration,
    /// How long one run may take.
    pub timeout: Duration,
    /// Consecutive successes that make it succeed.
    pub success_threshold: u32,
    /// Consecutive failures that make it fail.
    pub failure_threshold: u32,
}

/// Why a probe cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// It names a port the container does not declare, or none at all.
    #[error("probe port {0:?} is not a number or a named port of the container")]
    Port(String),
    /// It has no action.
    #[error("probe has no exec, httpGet, tcpSocket or grpc action")]
    NoAction,
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.map_or(default, |v| v.max(0) as u64))
}

fn port_of(port: &IntOrString, container: &core::Container) -> Result<u16, ProbeError> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| ProbeError::Port(n.to_string())),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok())
            .ok_or_else(|| ProbeError::Port(name.clone())),
    }
}

/// An `httpGet` (of a probe or a hook) as an action, its named port resolved.
pub fn http_action(
    http: &core::HTTPGetAction,
    container: &core::Container,
) -> Result<Action, ProbeError> {
    Ok(Action::Http {
        host: http.host.clone().filter(|h| !h.is_empty()),
        port: port_of(&http.port, container)?,
        path: http
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into()),
        headers: http
            .http_headers
            .iter()
            .flatten()
            .map(|h| (h.name.clone(), h.value.clone()))
            .collect(),
    })
}

impl ProbeSpec {
    /// The probe of `container`, defaults filled in and named ports resolved.
    pub fn of(probe: &core::Probe, container: &core::Container) -> Result<ProbeSpec, ProbeError> {
        let action = if let Some(exec) = &probe.exec {
            Action::Exec(exec.command.clone().unwrap_or_default())
        } else if let Some(http) = &probe.http_get {
            http_action(http, container)?
        } else if let Some(tcp) = &probe.tcp_socket {
            Action::Tcp {
                host: tcp.host.clone().filter(|h| !h.is_empty()),
                port: port_of(&tcp.port, container)?,
            }
        } else if let Some(grpc) = &probe.grpc {
            Action::Grpc {
                port: u16::try_from(grpc.port)
                    .map_err(|_| ProbeError::Port(grpc.port.to_string()))?,
                service: grpc.service.clone().unwrap_or_default(),
            }
        } else {
            return Err(ProbeError::NoAction);
        };
        Ok(ProbeSpec {
            action,
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: probe.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: probe.failure_threshold.unwrap_or(3).max(1) as u32,
        })
    }
}

/// One run's outcome: success, or failure with what went wrong.
pub type Outcome = Result<(), String>;

/// Runs an HTTP GET and judges the status code.
pub async fn http_get(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    let url = format!("http://{host}:{port}{path}");
    let run = async {
        let mut stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("Get \"{url}\": dial tcp {host}:{port}: {e}"))?;
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 512];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("Get \"{url}\": {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
        if (200..400).contains(&code) {
            Ok(())
        } else {
            Err(format!("HTTP probe failed with statuscode: {code}"))
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!(
            "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )),
    }
}

/// Opens a TCP connection.
pub async fn tcp(host: &str, port: u16, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial tcp {host}:{port}: {e}")),
        Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
    }
}

/// A probe's running state: consecutive results and when it runs next.
#[derive(Debug, Clone)]
pub struct ProbeState {
    /// The probe.
    pub spec: ProbeSpec,
    /// Which probe.
    pub kind: ProbeKind,
    /// The verdict so far: `None` before the thresholds decide.
    pub verdict: Option<bool>,
    successes: u32,
    failures: u32,
    /// When it runs next.
    pub next_at: Instant,
}

impl ProbeState {
    /// A probe of a container that started at `started`.
    pub fn new(kind: ProbeKind, spec: ProbeSpec, started: Instant) -> ProbeState {
        ProbeState {
            next_at: started + spec.initial_delay,
            spec,
            kind,
            verdict: None,
            successes: 0,
            failures: 0,
        }
    }

    /// Records a run at `now`; returns the verdict when it changed.
    pub fn record(&mut self, outcome: &Outcome, now: Instant) -> Option<bool> {
        self.next_at = now + self.spec.period;
        match outcome {
            Ok(()) => {
                self.failures = 0;
                self.successes += 1;
                if self.successes >= self.spec.success_threshold && self.verdict != Some(true) {
                    self.verdict = Some(true);
                    return Some(true);
                }
            }
            Err(_) => {
                self.successes = 0;
                self.failures += 1;
                if self.failures >= self.spec.failure_threshold && self.verdict != Some(false) {
                    self.verdict = Some(false);
                    return Some(false);
                }
            }
        }
        None
    }

    /// Starts over (after the container was restarted).
    pub fn reset(&mut self, started: Instant) {
        *self = ProbeState::new(self.kind, self.spec.clone(), started);
    }
}

/// Runs one probe action against a container at `ip`.
pub async fn run(
    action: &Action,
    runtime: &dyn Runtime,
    id: &str,
    ip: &str,
    timeout: Duration,
) -> Outcome {
    match action {
        Action::Exec(command) => match runtime.exec_sync(id, command.clone(), timeout).await {
            Ok((0, _)) => Ok(()),
            Ok((code, output)) => Err(format!(
                "command {command:?} exited with {code}: {}",
                output.trim()
            )),
            Err(e) => Err(e.to_string()),
        },
        Action::Http {
            host,
            port,
            path,
            headers,
        } => http_get(host.as_deref().unwrap_or(ip), *port, path, headers, timeout).await,
        Action::Tcp { host, port } => tcp(host.as_deref().unwrap_or(ip), *port, timeout).await,
        Action::Grpc { port, service } => {
            super::grpc_health::check(ip, *port, service, timeout).await
        }
    }
}

/// The probes of one container.
#[derive(Debug, Clone, Default)]
pub struct ContainerProbes {
    startup: Option<ProbeState>,
    liveness: Option<ProbeState>,
    readiness: Option<ProbeState>,
}

/// What a round of probes found.
#[derive(Debug, Default)]
pub struct Tick {
    /// When the next probe is due.
    pub wake: Option<Instant>,
    /// The failures, as `Unhealthy` Events word them.
    pub unhealthy: Vec<String>,
    /// Why the container must be restarted, if it must.
    pub kill: Option<String>,
    /// Whether readiness or startup changed.
    pub changed: bool,
}

impl ContainerProbes {
    /// The probes of `container`, started at `started`; a probe that cannot be used is
    /// reported and left out.
    pub fn of(container: &core::Container, started: Instant) -> (ContainerProbes, Vec<String>) {
        let mut problems = Vec::new();
        let mut make = |kind: ProbeKind, probe: &Option<core::Probe>| {
            let probe = probe.as_ref()?;
            match ProbeSpec::of(probe, container) {
                Ok(spec) => Some(ProbeState::new(kind, spec, started)),
                Err(e) => {
                    problems.push(format!("{} probe: {e}", kind.label()));
                    None
                }
            }
        };
        let probes = ContainerProbes {
            startup: make(ProbeKind::Startup, &container.startup_probe),
            liveness: make(ProbeKind::Liveness, &container.liveness_probe),
            readiness: make(ProbeKind::Readiness, &container.readiness_probe),
        };
        (probes, problems)
    }

    /// Whether the startup probe (if any) has succeeded.
    pub fn started(&self) -> bool {
        self.startup
            .as_ref()
            .is_none_or(|p| p.verdict == Some(true))
    }

    /// Whether the container counts as ready (started, and its readiness probe, if any,
    /// succeeded).
    pub fn ready(&self) -> bool {
        self.started()
            && self
                .readiness
                .as_ref()
                .is_none_or(|p| p.verdict == Some(true))
    }

    /// Runs the probes that are due at `now` against the running container `id` at `ip`.
    pub async fn tick(&mut self, runtime: &dyn Runtime, id: &str, ip: &str, now: Instant) -> Tick {
        let mut tick = Tick::default();
        let started = self.started();
        let due: Vec<&mut ProbeState> = if started {
            [self.liveness.as_mut(), self.readiness.as_mut()]
                .into_iter()
                .flatten()
                .collect()
        } else {
            self.startup.as_mut().into_iter().collect()
        };
        for probe in due {
            if probe.next_at <= now {
                let outcome = run(&probe.spec.action, runtime, id, ip, probe.spec.timeout).await;
                if let Err(message) = &outcome {
                    tick.unhealthy
                        .push(format!("{} probe failed: {message}", probe.kind.label()));
                }
                let verdict = probe.record(&outcome, Instant::now());
                match (probe.kind, verdict) {
                    (ProbeKind::Liveness | ProbeKind::Startup, Some(false)) => {
                        tick.kill = Some(probe.kind.label().to_ascii_lowercase());
                    }
                    (ProbeKind::Readiness | ProbeKind::Startup, Some(_)) => tick.changed = true,
                    _ => {}
                }
            }
            tick.wake = Some(tick.wake.map_or(probe.next_at, |w| w.min(probe.next_at)));
        }
        if started != self.started() {
            tick.changed = true;
            // The others start once startup has succeeded.
            let now = Instant::now();
            for p in [self.liveness.as_mut(), self.readiness.as_mut()]
                .into_iter()
                .flatten()
            {
                p.reset(now);
                tick.wake = Some(tick.wake.map_or(p.next_at, |w| w.min(p.next_at)));
            }
        }
        tick
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(json: serde_json::Value) -> core::Container {
        serde_json::from_value(json).expect("container")
    }

    #[test]
    fn defaults_and_named_ports() {
        let c = container(serde_json::json!({"name": "web",
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"port": "http"}}}));
        let spec = ProbeSpec::of(c.readiness_probe.as_ref().expect("probe"), &c).expect("spec");
        assert_eq!(
            spec,
            ProbeSpec {
                action: Action::Http {
                    host: None,
                    port: 8080,
                    path: "/".into(),
                    headers: vec![]
                },
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let bad = container(serde_json::json!({"name": "web",
            "livenessProbe": {"tcpSocket": {"port": "nope"}}}));
        assert_eq!(
            ProbeSpec::of(bad.liveness_probe.as_ref().expect("probe"), &bad),
            Err(ProbeError::Port("nope".into()))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn thresholds_decide_the_verdict() {
        let c = container(serde_json::json!({"name": "c",
            "livenessProbe": {"exec": {"command": ["true"]}, "failureThreshold": 2,
                "initialDelaySeconds": 5, "periodSeconds": 3}}));
        let spec = ProbeSpec::of(c.liveness_probe.as_ref().expect("probe"), &c).expect("spec");
        let start = Instant::now();
        let mut state = ProbeState::new(ProbeKind::Liveness, spec, start);
        assert_eq!(state.next_at, start + Duration::from_secs(5));
        assert_eq!(state.record(&Ok(()), start), Some(true));
        assert_eq!(state.record(&Ok(()), start), None);
        assert_eq!(state.record(&Err("no".into()), start), None);
        assert_eq!(state.record(&Err("no".into()), start), Some(false));
        assert_eq!(state.next_at, start + Duration::from_secs(3));
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            for code in ["200 OK", "500 Internal Server Error"] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _read = s.read(&mut buf).await;
                let answer = format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n");
                s.write_all(answer.as_bytes()).await.expect("write");
            }
        });
        let t = Duration::from_secs(2);
        assert_eq!(http_get("127.0.0.1", port, "/", &[], t).await, Ok(()));
        assert_eq!(
            http_get("127.0.0.1", port, "/", &[], t).await,
            Err("HTTP probe failed with statuscode: 500".into())
        );
        let open = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let open_port = open.local_addr().expect("addr").port();
        assert_eq!(tcp("127.0.0.1", open_port, t).await, Ok(()));
        drop(open);
        assert!(
            tcp("127.0.0.1", open_port, t).await.is_err(),
            "nobody listens any more"
        );
    }
}
