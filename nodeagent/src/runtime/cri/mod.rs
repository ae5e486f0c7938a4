//! `cri`: containers run by a CRI v1 runtime (containerd, CRI-O) over its gRPC socket, as a
//! kubelet runs them. Sandboxes carry the pod's network (the runtime's CNI configuration,
//! made from the node's podCIDR, which the agent hands over with `UpdateRuntimeConfig`);
//! containers write their logs in the CRI format under the node's `pods/` folder, where
//! `kubectl logs` finds them; everything is labelled with the node and the pod's uid, so that
//! a restarted agent finds its pods again instead of starting them twice.

pub mod api;
pub mod client;
mod exits;
mod ports;
pub mod stream;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::future::BoxFuture;

use super::image::{ImageReady, ImageRequest, PullPolicy, auth_for};
use super::{
    Adopted, AdoptedContainer, ContainerConfig, ContainerState, ContainerStatus, PodPorts, Runtime,
    RuntimeError, SandboxConfig, SandboxInfo,
};
use client::CriClient;
use exits::Exits;

/// Labels ferry puts on what it asks the runtime to make.
const NODE: &str = "ferry.dev/node";
const POD_UID: &str = "io.kubernetes.pod.uid";
const POD_NAME: &str = "io.kubernetes.pod.name";
const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const CONTAINER_NAME: &str = "io.kubernetes.container.name";
const INIT: &str = "ferry.dev/init";

/// A sandbox this agent made or found again.
#[derive(Debug, Clone)]
struct SandboxEntry {
    config: api::PodSandboxConfig,
    /// The next attempt of each container name.
    attempts: HashMap<String, u32>,
    ip: String,
}

/// A container this agent made or found again.
#[derive(Debug, Clone)]
struct ContainerEntry {
    sandbox: String,
    name: String,
    attempt: u32,
    image: String,
    log: PathBuf,
}

/// What the runtime has, as this agent knows it.
#[derive(Debug, Default)]
struct Book {
    sandboxes: HashMap<String, SandboxEntry>,
    containers: HashMap<String, ContainerEntry>,
    /// Pods found again at start, by uid, until their workers take them over.
    adopted: HashMap<String, Adopted>,
}

/// The `cri` runtime of one node.
#[derive(Debug)]
pub struct CriRuntime {
    client: CriClient,
    node: String,
    address: String,
    pods_dir: PathBuf,
    pod_cidr: String,
    cidr_given: AtomicBool,
    /// The runtime's name as it says it (`containerd`), once it answered.
    runtime_name: std::sync::OnceLock<String>,
    book: Arc<Mutex<Book>>,
    exits: Arc<Exits>,
    /// How containers' log files are rotated, and whether the rotation loop runs.
    rotation: super::crilog::Rotation,
    rotating: AtomicBool,
}

/// How often container log sizes are looked at (the kubelet's 10 s).
const ROTATION_CHECK: Duration = Duration::from_secs(10);

/// Nanoseconds since the epoch as RFC 3339.
fn rfc3339(nanos: i64) -> String {
    jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A CRI container status as ferry's.
fn state_of(status: &api::ContainerStatus) -> ContainerState {
    match api::ContainerState::try_from(status.state) {
        Ok(api::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(api::ContainerState::ContainerRunning) => ContainerState::Running {
            started_at: rfc3339(status.started_at),
        },
        Ok(api::ContainerState::ContainerExited) => ContainerState::Exited {
            started_at: rfc3339(if status.started_at > 0 {
                status.started_at
            } else {
                status.created_at
            }),
            finished_at: rfc3339(status.finished_at),
            exit_code: status.exit_code,
            reason: match status.reason.as_str() {
                "" if status.exit_code == 0 => "Completed".to_owned(),
                "" => "Error".to_owned(),
                reason => reason.to_owned(),
            },
        },
        Ok(api::ContainerState::ContainerUnknown) | Err(_) => ContainerState::Exited {
            started_at: rfc3339(status.started_at),
            finished_at: rfc3339(status.finished_at),
            exit_code: 255,
            reason: "Unknown".to_owned(),
        },
    }
}

impl CriRuntime {
    /// The runtime of node `node` (address `address`, pods' CIDR `pod_cidr`), talking to the
    /// CRI socket `socket`, writing container logs under `root/pods`.
    pub fn new(
        socket: &Path,
        node: &str,
        address: &str,
        pod_cidr: &str,
        root: &Path,
    ) -> CriRuntime {
        let client = CriClient::new(socket);
        let labels = HashMap::from([(NODE.to_owned(), node.to_owned())]);
        CriRuntime {
            exits: Exits::new(client.clone(), labels),
            client,
            node: node.to_owned(),
            address: address.to_owned(),
            pods_dir: root.join("pods"),
            pod_cidr: pod_cidr.to_owned(),
            cidr_given: AtomicBool::new(false),
            runtime_name: std::sync::OnceLock::new(),
            book: Arc::default(),
            rotation: super::crilog::Rotation::default(),
            rotating: AtomicBool::new(false),
        }
    }

    /// The same, rotating containers' log files as `rotation` says.
    pub fn with_log_rotation(mut self, rotation: super::crilog::Rotation) -> CriRuntime {
        self.rotation = rotation;
        self
    }

    /// Starts the loop that rotates the logs of running containers, once: a file past the
    /// size limit is renamed and the runtime told to reopen it (`ReopenContainerLog`).
    fn start_rotating(&self) {
        if self.rotating.swap(true, Ordering::AcqRel) {
            return;
        }
        let (client, book, exits, rotation) = (
            self.client.clone(),
            self.book.clone(),
            self.exits.clone(),
            self.rotation,
        );
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(ROTATION_CHECK).await;
                let logs: Vec<(String, PathBuf)> = book
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .containers
                    .iter()
                    .filter(|(id, _)| !exits.has_ended(id))
                    .map(|(id, c)| (id.clone(), c.log.clone()))
                    .collect();
                for (id, log) in logs {
                    let big = std::fs::metadata(&log).is_ok_and(|m| m.len() >= rotation.max_bytes);
                    if !big {
                        continue;
                    }
                    if let Err(e) = super::crilog::rotate(&log, &rotation) {
                        tracing::warn!(container = %id, log = %log.display(), error = %e, "a container log could not be rotated");
                        continue;
                    }
                    if let Err(e) = client.reopen_container_log(&id).await {
                        tracing::warn!(container = %id, error = %e, "the runtime did not reopen a rotated log");
                    }
                }
            }
        });
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn node_labels(&self) -> HashMap<String, String> {
        HashMap::from([(NODE.to_owned(), self.node.clone())])
    }

    /// Tells the runtime the node's pod CIDR (its CNI configuration is made from it) once.
    async fn give_pod_cidr(&self) -> Result<(), RuntimeError> {
        if self.cidr_given.load(Ordering::Acquire) {
            return Ok(());
        }
        self.client.set_pod_cidr(&self.pod_cidr).await?;
        self.cidr_given.store(true, Ordering::Release);
        Ok(())
    }

    /// The IP of a sandbox (the node's for a sandbox in the node's network).
    async fn sandbox_ip(&self, id: &str) -> Result<String, RuntimeError> {
        let status = self.client.pod_sandbox_status(id).await?;
        Ok(status
            .network
            .map(|n| n.ip)
            .filter(|ip| !ip.is_empty())
            .unwrap_or_else(|| self.address.clone()))
    }

    async fn recover_all(&self) -> Result<usize, RuntimeError> {
        let sandboxes = self.client.list_pod_sandboxes(self.node_labels()).await?;
        let containers = self.client.list_containers(self.node_labels()).await?;
        let mut running = 0;
        for sandbox in sandboxes {
            if sandbox.state != api::PodSandboxState::SandboxReady as i32 {
                continue;
            }
            let Some(uid) = sandbox.labels.get(POD_UID).cloned() else {
                continue;
            };
            let ip = self.sandbox_ip(&sandbox.id).await?;
            let metadata = sandbox.metadata.clone().unwrap_or_default();
            let mut entry = SandboxEntry {
                config: api::PodSandboxConfig {
                    log_directory: self
                        .pods_dir
                        .join(format!("{}_{}_{}", metadata.namespace, metadata.name, uid))
                        .to_string_lossy()
                        .into_owned(),
                    metadata: Some(metadata),
                    labels: sandbox.labels.clone(),
                    ..Default::default()
                },
                attempts: HashMap::new(),
                ip: ip.clone(),
            };
            // The containers of the sandbox by name, newest attempt last.
            let mut by_name: HashMap<String, Vec<(u32, String, bool)>> = HashMap::new();
            for c in containers.iter().filter(|c| c.pod_sandbox_id == sandbox.id) {
                let name = c.labels.get(CONTAINER_NAME).cloned().unwrap_or_default();
                let attempt = c.metadata.as_ref().map_or(0, |m| m.attempt);
                let init = c.labels.get(INIT).is_some_and(|v| v == "true");
                by_name
                    .entry(name)
                    .or_default()
                    .push((attempt, c.id.clone(), init));
            }
            let mut adopted = Vec::new();
            for (name, mut attempts) in by_name {
                attempts.sort();
                let Some((attempt, id, init)) = attempts.last().cloned() else {
                    continue;
                };
                entry.attempts.insert(name.clone(), attempt + 1);
                let mut previous = None;
                if attempts.len() > 1 {
                    let (_, before, _) = &attempts[attempts.len() - 2];
                    previous = Some(state_of(&self.client.container_status(before).await?));
                }
                let status = self.client.container_status(&id).await?;
                let state = state_of(&status);
                if matches!(state, ContainerState::Running { .. }) {
                    running += 1;
                } else {
                    self.exits.saw_end(&id);
                }
                for (a, cid, _) in &attempts {
                    self.book().containers.insert(
                        cid.clone(),
                        ContainerEntry {
                            sandbox: sandbox.id.clone(),
                            name: name.clone(),
                            attempt: *a,
                            image: status
                                .image
                                .as_ref()
                                .map(|i| i.user_specified_image.clone())
                                .filter(|i| !i.is_empty())
                                .unwrap_or_else(|| status.image_ref.clone()),
                            log: PathBuf::from(&entry.config.log_directory)
                                .join(&name)
                                .join(format!("{a}.log")),
                        },
                    );
                }
                adopted.push(AdoptedContainer {
                    id,
                    name,
                    init,
                    restarts: attempt,
                    state,
                    previous,
                });
            }
            let mut book = self.book();
            book.sandboxes.insert(sandbox.id.clone(), entry);
            book.adopted.insert(
                uid.clone(),
                Adopted {
                    sandbox: SandboxInfo {
                        id: sandbox.id.clone(),
                        pod_uid: uid,
                        ip,
                        ready: true,
                    },
                    containers: adopted,
                },
            );
        }
        Ok(running)
    }

    /// Removes the containers of `name` in `sandbox` older than the one before `attempt`
    /// (the last ended one is kept, for `kubectl logs --previous`).
    async fn remove_older(&self, sandbox: &str, name: &str, attempt: u32) {
        let old: Vec<String> = self
            .book()
            .containers
            .iter()
            .filter(|(_, c)| c.sandbox == sandbox && c.name == name && c.attempt + 1 < attempt)
            .map(|(id, _)| id.clone())
            .collect();
        for id in old {
            match self.client.remove_container(&id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {
                    self.book().containers.remove(&id);
                    self.exits.forget(&id);
                }
                Err(e) => {
                    tracing::warn!(container = %id, error = %e, "an old container could not be removed; tried again at the next restart");
                }
            }
        }
    }
}

impl Runtime for CriRuntime {
    fn name(&self) -> &'static str {
        "cri"
    }

    fn id_scheme(&self) -> String {
        self.runtime_name
            .get()
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| "cri".to_owned())
    }

    fn run_pod_sandbox(
        &self,
        config: SandboxConfig,
    ) -> BoxFuture<'_, Result<SandboxInfo, RuntimeError>> {
        Box::pin(async move {
            self.start_rotating();
            self.give_pod_cidr().await?;
            let log_dir = self.pods_dir.join(format!(
                "{}_{}_{}",
                config.namespace, config.name, config.uid
            ));
            std::fs::create_dir_all(&log_dir)
                .map_err(|e| RuntimeError::Failed(format!("making {}: {e}", log_dir.display())))?;
            let labels = HashMap::from([
                (NODE.to_owned(), self.node.clone()),
                (POD_UID.to_owned(), config.uid.clone()),
                (POD_NAME.to_owned(), config.name.clone()),
                (POD_NAMESPACE.to_owned(), config.namespace.clone()),
            ]);
            let network = if config.host_network {
                api::NamespaceMode::Node
            } else {
                api::NamespaceMode::Pod
            };
            let sandbox = api::PodSandboxConfig {
                metadata: Some(api::PodSandboxMetadata {
                    name: config.name.clone(),
                    uid: config.uid.clone(),
                    namespace: config.namespace.clone(),
                    attempt: 0,
                }),
                // A pod in the node's network has the node's hostname (runc cannot set one
                // without a UTS namespace of its own).
                hostname: if config.host_network {
                    String::new()
                } else {
                    config.name.clone()
                },
                log_directory: log_dir.to_string_lossy().into_owned(),
                dns_config: None,
                labels,
                annotations: config.annotations.into_iter().collect(),
                linux: Some(api::LinuxPodSandboxConfig {
                    cgroup_parent: String::new(),
                    security_context: Some(api::LinuxSandboxSecurityContext {
                        namespace_options: Some(api::NamespaceOption {
                            network: network as i32,
                            pid: api::NamespaceMode::Container as i32,
                            ipc: api::NamespaceMode::Pod as i32,
                        }),
                    }),
                }),
            };
            let id = self.client.run_pod_sandbox(sandbox.clone()).await?;
            let ip = self.sandbox_ip(&id).await?;
            self.book().sandboxes.insert(
                id.clone(),
                SandboxEntry {
                    config: sandbox,
                    attempts: HashMap::new(),
                    ip: ip.clone(),
                },
            );
            Ok(SandboxInfo {
                id,
                pod_uid: config.uid,
                ip,
                ready: true,
            })
        })
    }

    fn stop_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move { self.client.stop_pod_sandbox(&id).await })
    }

    fn remove_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            match self.client.remove_pod_sandbox(&id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            let mut book = self.book();
            book.sandboxes.remove(&id);
            let gone: Vec<String> = book
                .containers
                .iter()
                .filter(|(_, c)| c.sandbox == id)
                .map(|(cid, _)| cid.clone())
                .collect();
            for cid in gone {
                book.containers.remove(&cid);
                self.exits.forget(&cid);
            }
            Ok(())
        })
    }

    fn list_pod_sandboxes(&self) -> BoxFuture<'_, Result<Vec<SandboxInfo>, RuntimeError>> {
        Box::pin(async move {
            let sandboxes = self.client.list_pod_sandboxes(self.node_labels()).await?;
            Ok(sandboxes
                .into_iter()
                .map(|s| SandboxInfo {
                    pod_uid: s.labels.get(POD_UID).cloned().unwrap_or_default(),
                    ip: self
                        .book()
                        .sandboxes
                        .get(&s.id)
                        .map(|e| e.ip.clone())
                        .unwrap_or_default(),
                    ready: s.state == api::PodSandboxState::SandboxReady as i32,
                    id: s.id,
                })
                .collect())
        })
    }

    fn create_container(
        &self,
        sandbox: &str,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<String, RuntimeError>> {
        let sandbox = sandbox.to_owned();
        Box::pin(async move {
            let (sandbox_config, attempt) = {
                let mut book = self.book();
                let entry = book
                    .sandboxes
                    .get_mut(&sandbox)
                    .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
                let attempt = entry.attempts.entry(config.name.clone()).or_insert(0);
                let this = *attempt;
                *attempt += 1;
                (entry.config.clone(), this)
            };
            let metadata = sandbox_config.metadata.clone().unwrap_or_default();
            let log_path = format!("{}/{attempt}.log", config.name);
            let (command, args) = if config.image_entrypoint {
                (Vec::new(), config.command.clone())
            } else {
                (config.command.clone(), Vec::new())
            };
            let resources = api::LinuxContainerResources {
                cpu_period: config.limits.cpu_millis.map_or(0, |_| 100_000),
                cpu_quota: config
                    .limits
                    .cpu_millis
                    .map_or(0, |m| i64::try_from(m * 100).unwrap_or(i64::MAX)),
                cpu_shares: config
                    .limits
                    .cpu_millis
                    .map_or(2, |m| i64::try_from((m * 1024 / 1000).max(2)).unwrap_or(2)),
                memory_limit_in_bytes: config
                    .limits
                    .memory_bytes
                    .map_or(0, |b| i64::try_from(b).unwrap_or(i64::MAX)),
            };
            let request = api::ContainerConfig {
                metadata: Some(api::ContainerMetadata {
                    name: config.name.clone(),
                    attempt,
                }),
                image: Some(api::ImageSpec {
                    image: config.image.clone(),
                    user_specified_image: config.image.clone(),
                }),
                command,
                args,
                working_dir: config.working_dir.clone().unwrap_or_default(),
                envs: config
                    .env
                    .iter()
                    .map(|(key, value)| api::KeyValue {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                mounts: config
                    .mounts
                    .iter()
                    .map(|m| api::Mount {
                        container_path: m.target.clone(),
                        host_path: m.source.to_string_lossy().into_owned(),
                        readonly: m.read_only,
                    })
                    .collect(),
                labels: HashMap::from([
                    (NODE.to_owned(), self.node.clone()),
                    (POD_UID.to_owned(), metadata.uid.clone()),
                    (POD_NAME.to_owned(), metadata.name.clone()),
                    (POD_NAMESPACE.to_owned(), metadata.namespace.clone()),
                    (CONTAINER_NAME.to_owned(), config.name.clone()),
                    (INIT.to_owned(), config.init.to_string()),
                ]),
                log_path: log_path.clone(),
                stdin: config.stdin,
                stdin_once: config.stdin_once,
                tty: config.tty,
                linux: Some(api::LinuxContainerConfig {
                    resources: Some(resources),
                }),
            };
            let log = PathBuf::from(&sandbox_config.log_directory).join(&log_path);
            let id = self
                .client
                .create_container(&sandbox, request, sandbox_config)
                .await?;
            self.book().containers.insert(
                id.clone(),
                ContainerEntry {
                    sandbox: sandbox.clone(),
                    name: config.name.clone(),
                    attempt,
                    image: config.image.clone(),
                    log,
                },
            );
            self.remove_older(&sandbox, &config.name, attempt).await;
            Ok(id)
        })
    }

    fn start_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move { self.client.start_container(&id).await })
    }

    fn stop_container(&self, id: &str, grace: Duration) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            // CRI counts the grace in whole seconds; a part of one is a second.
            let seconds = grace.as_secs() + u64::from(grace.subsec_nanos() > 0);
            self.client
                .stop_container(&id, i64::try_from(seconds).unwrap_or(i64::MAX))
                .await?;
            self.exits.saw_end(&id);
            Ok(())
        })
    }

    fn remove_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            match self.client.remove_container(&id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
            self.book().containers.remove(&id);
            self.exits.forget(&id);
            Ok(())
        })
    }

    fn container_status(&self, id: &str) -> BoxFuture<'_, Result<ContainerStatus, RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let status = self.client.container_status(&id).await?;
            let state = state_of(&status);
            if matches!(state, ContainerState::Exited { .. }) {
                self.exits.saw_end(&id);
            }
            let known = self.book().containers.get(&id).cloned();
            Ok(ContainerStatus {
                name: known.as_ref().map_or_else(
                    || status.metadata.clone().unwrap_or_default().name,
                    |k| k.name.clone(),
                ),
                image: known
                    .as_ref()
                    .map_or_else(|| status.image_ref.clone(), |k| k.image.clone()),
                log_path: known.map(|k| k.log).or_else(|| {
                    (!status.log_path.is_empty()).then(|| status.log_path.clone().into())
                }),
                state,
                changes_at: None,
                image_ref: (!status.image_ref.is_empty()).then(|| status.image_ref.clone()),
                id,
            })
        })
    }

    fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(i32, String), RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let response = self.client.exec_sync(&id, command, timeout).await?;
            let mut output = String::from_utf8_lossy(&response.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&response.stderr));
            Ok((response.exit_code, output))
        })
    }

    fn exec(
        &self,
        id: &str,
        request: super::exec::ExecRequest,
    ) -> BoxFuture<'_, Result<super::exec::ExecSession, RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let url = self
                .client
                .exec(api::ExecRequest {
                    container_id: id,
                    cmd: request.command.clone(),
                    tty: request.tty,
                    stdin: request.stdin,
                    stdout: true,
                    stderr: !request.tty,
                })
                .await?;
            stream::open(&url, &request).await
        })
    }

    fn attach(
        &self,
        id: &str,
        request: super::exec::ExecRequest,
    ) -> BoxFuture<'_, Result<super::exec::ExecSession, RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let url = self
                .client
                .attach(api::AttachRequest {
                    container_id: id,
                    stdin: request.stdin,
                    tty: request.tty,
                    stdout: true,
                    stderr: !request.tty,
                })
                .await?;
            stream::open(&url, &request).await
        })
    }

    fn pull_image(&self, request: ImageRequest) -> BoxFuture<'_, Result<ImageReady, RuntimeError>> {
        Box::pin(async move {
            if request.policy != PullPolicy::Always
                && self.client.image_status(&request.image).await?.is_some()
            {
                return Ok(ImageReady::Present);
            }
            if request.policy == PullPolicy::Never {
                return Err(RuntimeError::ImageNeverPull(format!(
                    "Container image \"{}\" is not present with pull policy of Never",
                    request.image
                )));
            }
            let auth = auth_for(&request.auths, &request.image).map(|a| api::AuthConfig {
                username: a.username.clone(),
                password: a.password.clone(),
                auth: String::new(),
                // A URL: the runtime compares its host with the registry's.
                server_address: format!("https://{}", a.server),
            });
            let started = tokio::time::Instant::now();
            match self.client.pull_image(&request.image, auth).await {
                Ok(_) => Ok(ImageReady::Pulled(started.elapsed())),
                Err(RuntimeError::Failed(message) | RuntimeError::NotFound(message)) => {
                    Err(RuntimeError::ImagePull(message))
                }
                Err(e) => Err(e),
            }
        })
    }

    fn recover(&self) -> BoxFuture<'_, usize> {
        Box::pin(async move {
            match self.client.version().await {
                Ok(v) => {
                    self.runtime_name.get_or_init(|| v.runtime_name.clone());
                    tracing::info!(node = %self.node, socket = %self.client.socket().display(), runtime = %v.runtime_name, version = %v.runtime_version, "the CRI runtime answers");
                }
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "the CRI runtime does not answer yet; pods wait for it");
                    return 0;
                }
            }
            if let Err(e) = self.give_pod_cidr().await {
                tracing::warn!(node = %self.node, error = %e, "the pod CIDR could not be given to the runtime; tried again at the first sandbox");
            }
            match self.recover_all().await {
                Ok(running) => running,
                Err(e) => {
                    tracing::warn!(node = %self.node, error = %e, "what the runtime runs could not be listed; pods start afresh");
                    0
                }
            }
        })
    }

    fn adopt(&self, pod_uid: &str) -> Option<Adopted> {
        self.book().adopted.remove(pod_uid)
    }

    fn pod_ports(
        &self,
        namespace: &str,
        pod: &str,
    ) -> BoxFuture<'_, Result<PodPorts, RuntimeError>> {
        let found = self.sandbox_of(namespace, pod);
        let what = format!("{namespace}/{pod}");
        Box::pin(async move {
            let (id, host) = found.ok_or_else(|| RuntimeError::NotFound(format!("pod {what}")))?;
            self.ports_of(&id, host).await
        })
    }

    fn find_container(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        let book = self.book();
        book.containers
            .iter()
            .filter(|(_, c)| c.name == container)
            .filter(|(_, c)| {
                book.sandboxes.get(&c.sandbox).is_some_and(|s| {
                    s.config
                        .metadata
                        .as_ref()
                        .is_some_and(|m| m.namespace == namespace && m.name == pod)
                })
            })
            .max_by_key(|(_, c)| c.attempt)
            .map(|(id, _)| id.clone())
    }

    fn changed(&self, id: &str) -> BoxFuture<'static, ()> {
        Box::pin(self.exits.wait(id))
    }

    fn writes_log(&self, path: &Path) -> bool {
        let book = self.book();
        book.containers
            .iter()
            .any(|(id, c)| c.log == path && !self.exits.has_ended(id))
    }
}
