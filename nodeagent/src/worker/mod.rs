//! One pod's life on its node: a [`PodWorker`] moves it through an explicit state machine
//! (sandbox, init containers in order, containers, restarts, the end) against the runtime, and
//! writes the pod's status whenever what the kubelet would report changes.

mod adopt;
pub mod atomic;
pub mod compact;
pub mod env;
pub mod grpc_health;
pub mod hooks;
pub mod hosts;
pub mod probe;
mod pull;
mod report;
pub mod source_watch;
pub mod sources;
pub mod status;
mod stop;
pub mod tmpfs;
pub mod volumes;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use ferry_client::events::{Involved, Recorder};

use crate::runtime::{
    ContainerConfig, ContainerState, Runtime, RuntimeError, SandboxConfig, SandboxInfo,
};
use sources::PodSources;

/// A container restarted after a failure waits 10 s, doubling to 5 min (CrashLoopBackOff).
const RESTART_BACKOFF: Duration = Duration::from_secs(10);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(300);

/// A container's `resources.limits` as the runtime enforces them.
fn limits_of(c: &core::Container) -> crate::runtime::cgroups::Limits {
    use ferry_schema::quantity::Quantity;
    let limit = |name: &str| {
        c.resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get(name))
            .and_then(|q| Quantity::parse(&q.0).ok())
    };
    crate::runtime::cgroups::Limits {
        memory_bytes: limit("memory").and_then(|q| u64::try_from(q.value()).ok()),
        cpu_millis: limit("cpu").and_then(|q| u64::try_from(q.milli_value()).ok()),
    }
}

/// How long a container whose environment cannot be made waits before it is tried again.
const CONFIG_RETRY: Duration = Duration::from_secs(5);

/// ConfigMaps and Secrets read this recently are not read again (one read per pass).
const SOURCES_FRESH: Duration = Duration::from_secs(1);

/// How often a running pod's configMap, secret, downwardAPI and projected volumes are brought
/// up to date regardless (the kubelet's sync period): the safety net behind the watches of
/// the objects they show and the pod's own label and annotation changes, which refresh them
/// at once.
const VOLUME_REFRESH: Duration = Duration::from_secs(60);

/// What a pod worker knows of the node it runs on.
#[derive(Clone)]
pub struct NodeSite {
    /// The node's runtime.
    pub runtime: Arc<dyn Runtime>,
    /// The node agent's client.
    pub client: kube::Client,
    /// The node's address (`status.hostIP`).
    pub host_ip: String,
    /// The kubelet's Events (Pulled, Created, Started, Killing, BackOff), when recorded.
    pub events: Option<Recorder>,
    /// Where the node makes pods' volumes (real runtimes); hollow nodes make none.
    pub volume_root: Option<std::path::PathBuf>,
    /// The node's allocatable resources (`resourceFieldRef` of a limit a container leaves
    /// unset).
    pub allocatable: Arc<std::collections::BTreeMap<String, String>>,
    /// Watches of the ConfigMaps and Secrets pods mount (nodes that make volumes).
    pub watches: Option<Arc<source_watch::SourceWatches>>,
}

/// The wait before the restart that follows `restarts` earlier ones: 10 s doubling to 5 min.
fn restart_backoff(restarts: u32) -> Duration {
    (RESTART_BACKOFF * 2u32.pow(restarts.min(5))).min(MAX_RESTART_BACKOFF)
}

/// What the worker is told.
#[derive(Debug)]
pub enum PodUpdate {
    /// The pod object changed.
    Changed(Box<core::Pod>),
    /// The pod is gone: stop everything.
    Deleted,
}

/// Where a pod is in its life on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodState {
    /// Bound; nothing created yet.
    Pending,
    /// The sandbox is up; init containers run one at a time (the next to run).
    Initializing {
        /// The sandbox.
        sandbox: SandboxInfo,
        /// Index of the init container running or next.
        next: usize,
    },
    /// App containers created and started; they run, end, and restart per the policy.
    Running {
        /// The sandbox.
        sandbox: SandboxInfo,
    },
    /// Every container ended and none will restart.
    Finished {
        /// The sandbox: stopped (its network given back), removed when the pod is deleted.
        sandbox: SandboxInfo,
    },
    /// Torn down.
    Gone,
}

/// One container's bookkeeping.
#[derive(Debug, Clone, Default)]
struct Slot {
    id: Option<String>,
    restarts: u32,
    /// A restart is waiting until then.
    restart_at: Option<Instant>,
    last: Option<ContainerState>,
    /// Whether it was running when last looked at (the worker then waits for it to end).
    running: bool,
    /// Its probes (app containers).
    probes: probe::ContainerProbes,
    /// Why it waits to be created (a missing ConfigMap, Secret or key; an image that could
    /// not be pulled), until it is.
    waiting: Option<Waiting>,
    /// Failed pulls of its image in a row (the pull back-off).
    pull_failures: u32,
}

/// Why a container waits to be created, as `state.waiting` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Waiting {
    /// `CreateContainerConfigError`, `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull`.
    reason: &'static str,
    /// What went wrong.
    message: String,
}

/// Drives one pod.
pub struct PodWorker {
    pod: core::Pod,
    site: NodeSite,
    state: PodState,
    init: Vec<Slot>,
    containers: Vec<Slot>,
    start_time: String,
    /// The status last written (or read at the start), as compact JSON: a parsed value would
    /// cost each worker about 10 KB for as long as the pod lives.
    last_status: String,
    /// The pod's volumes, once made.
    prepared: Vec<volumes::Prepared>,
    /// The pod's ConfigMaps and Secrets as last read, and when.
    sources: Option<(Instant, PodSources)>,
    /// When the pod's volumes are next brought up to date.
    refresh_at: Option<Instant>,
    /// The watches of the objects its volumes show (a change refreshes them at once).
    subscriptions: Option<Vec<source_watch::Subscription>>,
    /// The pod's own `/etc/hosts`, once written (pods with a network of their own).
    hosts_file: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for PodWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodWorker")
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn name_of(pod: &core::Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

impl PodWorker {
    /// A worker for `pod` on the node `site`.
    pub fn new(pod: core::Pod, site: NodeSite) -> PodWorker {
        let spec = pod.spec.clone().unwrap_or_default();
        PodWorker {
            init: vec![Slot::default(); spec.init_containers.as_ref().map_or(0, Vec::len)],
            containers: vec![Slot::default(); spec.containers.len()],
            last_status: pod
                .status
                .as_ref()
                // Through a value, so the keys are in the order a written status has them.
                .and_then(|s| serde_json::to_value(s).ok())
                .map_or_else(|| "{}".to_owned(), |v| v.to_string()),
            // A pod taken over keeps the start time it was given.
            start_time: pod
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map_or_else(
                    || {
                        jiff::Timestamp::now()
                            .strftime("%Y-%m-%dT%H:%M:%SZ")
                            .to_string()
                    },
                    |t| t.0.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                ),
            pod,
            site,
            state: PodState::Pending,
            prepared: Vec::new(),
            sources: None,
            refresh_at: None,
            subscriptions: None,
            hosts_file: None,
        }
    }

    /// The pod's ConfigMaps and Secrets, read again unless read within [`SOURCES_FRESH`].
    async fn sources(&mut self) -> Result<PodSources, kube::Error> {
        if let Some((at, sources)) = &self.sources
            && at.elapsed() < SOURCES_FRESH
        {
            return Ok(sources.clone());
        }
        let sources = PodSources::read(&self.site.client, &self.pod).await?;
        self.sources = Some((Instant::now(), sources.clone()));
        Ok(sources)
    }

    /// Makes every volume of the pod (or brings their files up to date); a failure is
    /// reported (`FailedMount`) and tried again later.
    async fn make_volumes(&mut self) -> Result<bool, RuntimeError> {
        let Some(root) = self.site.volume_root.clone() else {
            return Ok(true);
        };
        // Followed before they are read: a change after the read is never missed.
        if self.subscriptions.is_none()
            && let Some(watches) = &self.site.watches
        {
            let namespace = self.pod.metadata.namespace.clone().unwrap_or_default();
            self.subscriptions = Some(
                sources::volume_references(&self.pod)
                    .into_iter()
                    .map(|(kind, name)| watches.subscribe(kind, &namespace, &name))
                    .collect(),
            );
        }
        let sources = match self.sources().await {
            Ok(sources) => sources,
            Err(e) => {
                tracing::warn!(pod = %name_of(&self.pod), error = %e, "the pod's ConfigMaps and Secrets cannot be read yet");
                return Ok(false);
            }
        };
        let ip = match &self.state {
            PodState::Initializing { sandbox, .. }
            | PodState::Running { sandbox }
            | PodState::Finished { sandbox } => sandbox.ip.clone(),
            PodState::Pending | PodState::Gone => String::new(),
        };
        let maker = volumes::VolumeMaker {
            sources: &sources,
            pod: &self.pod,
            root: &root,
            ips: (&ip, &self.site.host_ip),
        };
        let mut prepared = Vec::new();
        let mut failure = None;
        for volume in self.spec().volumes.iter().flatten() {
            match maker.make(volume) {
                Ok(p) => prepared.push(p),
                Err(e) => {
                    failure = Some(format!(
                        "MountVolume.SetUp failed for volume \"{}\" : {e}",
                        volume.name
                    ));
                    break;
                }
            }
        }
        if let Some(message) = failure {
            tracing::warn!(pod = %name_of(&self.pod), %message, "a volume cannot be made yet");
            self.event("Warning", "FailedMount", message);
            return Ok(false);
        }
        self.prepared = prepared;
        Ok(true)
    }

    /// Brings a running pod's configMap, secret, downwardAPI and projected volumes up to
    /// date when their time has come; returns when to look again.
    async fn refresh_volumes(&mut self, now: Instant) -> Result<Option<Instant>, RuntimeError> {
        let api_data = self.spec().volumes.iter().flatten().any(|v| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        });
        if self.site.volume_root.is_none() || !api_data {
            return Ok(None);
        }
        let at = *self.refresh_at.get_or_insert(now + VOLUME_REFRESH);
        if now < at {
            return Ok(Some(at));
        }
        self.make_volumes().await?;
        let next = now + VOLUME_REFRESH;
        self.refresh_at = Some(next);
        Ok(Some(next))
    }

    /// Writes the pod's `/etc/hosts` when it has a network of its own (an IP that is not the
    /// node's) and the node makes volumes.
    async fn write_hosts(&mut self, sandbox: &SandboxInfo) {
        let own_network =
            sandbox.ip != self.site.host_ip && !self.spec().host_network.unwrap_or(false);
        let Some(root) = self.site.volume_root.as_ref().filter(|_| own_network) else {
            return;
        };
        let dir = root.join(self.pod.metadata.uid.as_deref().unwrap_or_default());
        let path = dir.join(hosts::FILE);
        let content = hosts::content(&self.pod, &sandbox.ip);
        let file = path.clone();
        let written = crate::runtime::blocking(move || {
            std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, content))
        })
        .await;
        match written {
            Ok(()) => self.hosts_file = Some(path),
            Err(e) => {
                tracing::warn!(pod = %name_of(&self.pod), error = %e, "the pod's /etc/hosts could not be written; its containers see the node's");
            }
        }
    }

    /// The mounts of container `c`.
    fn mounts_of(&self, c: &core::Container) -> Vec<crate::runtime::mounts::Mount> {
        let volumes = self.spec().volumes.unwrap_or_default();
        let hosts = self
            .hosts_file
            .iter()
            .map(|path| crate::runtime::mounts::Mount {
                source: path.clone(),
                target: "/etc/hosts".into(),
                read_only: false,
            });
        c.volume_mounts
            .iter()
            .flatten()
            .filter_map(|vm| {
                let prepared = self.prepared.iter().find(|p| p.name == vm.name)?;
                let volume = volumes.iter().find(|v| v.name == vm.name)?;
                // Kubernetes mounts configMap, secret, downwardAPI and projected read-only.
                let api_data = volume.config_map.is_some()
                    || volume.secret.is_some()
                    || volume.downward_api.is_some()
                    || volume.projected.is_some();
                let source = match vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
                    Some(sub) => prepared.source.join(sub),
                    None => prepared.source.clone(),
                };
                Some(crate::runtime::mounts::Mount {
                    source,
                    target: vm.mount_path.clone(),
                    read_only: vm.read_only.unwrap_or(false) || api_data,
                })
            })
            .chain(hosts)
            .collect()
    }

    /// Records an Event beside the worker (Events are advice: never in the pod's way).
    fn event(&self, kind: &'static str, reason: &'static str, message: String) {
        if let Some(recorder) = &self.site.events {
            recorder.send(Involved::pod(&self.pod), kind, reason, message);
        }
    }

    /// The state now.
    pub fn state(&self) -> &PodState {
        &self.state
    }

    fn spec(&self) -> core::PodSpec {
        self.pod.spec.clone().unwrap_or_default()
    }

    fn restart_policy(&self) -> String {
        self.spec()
            .restart_policy
            .unwrap_or_else(|| "Always".into())
    }

    /// Runs until the pod is deleted or `cancel` fires.
    ///
    /// The steps are boxed while they run: inline, the largest of them would be part of every
    /// idle worker's future (10 KB a pod; 30,000 pods on hollow nodes).
    pub async fn run(mut self, mut updates: mpsc::Receiver<PodUpdate>, cancel: CancellationToken) {
        // A status write that failed is retried with back-off even when nothing else changes:
        // a pod whose Ready status was lost would otherwise stay unready until its next change
        // (an hour for a pod that runs quietly).
        let mut report_retry = report::ReportRetry::default();
        loop {
            if self.pod.metadata.deletion_timestamp.is_some() {
                // Deleted gracefully: stop everything within the grace period, then finish
                // the deletion (grace 0), which removes the pod from the apiserver.
                Box::pin(self.tear_down()).await;
                Box::pin(self.finish_deletion()).await;
                return;
            }
            let wake = match Box::pin(self.step()).await {
                Ok(wake) => wake,
                Err(e) => {
                    tracing::warn!(pod = %name_of(&self.pod), error = %e, "the runtime failed; retrying");
                    Some(Instant::now() + Duration::from_secs(1))
                }
            };
            let reported = Box::pin(self.report()).await;
            let mut until = wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if let Some(retry) = report_retry.after(reported) {
                until = until.min(Instant::now() + retry);
            }
            // A container seen running wakes the worker when it ends.
            let watched: Vec<_> = self
                .init
                .iter()
                .chain(self.containers.iter())
                .filter(|slot| slot.running)
                .filter_map(|slot| slot.id.as_deref())
                .map(|id| self.site.runtime.changed(id))
                .collect();
            let ended = async move {
                if watched.is_empty() {
                    std::future::pending::<()>().await;
                } else {
                    futures::future::select_all(watched).await;
                }
            };
            // A mounted ConfigMap or Secret that changes brings the pod's files up to date.
            let subscriptions = self.subscriptions.as_mut().filter(|s| !s.is_empty());
            let source_changed = async move {
                match subscriptions {
                    Some(subs) => {
                        futures::future::select_all(subs.iter_mut().map(|s| Box::pin(s.changed())))
                            .await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = ended => {}
                () = source_changed => {
                    self.sources = None;
                    self.refresh_at = Some(Instant::now());
                }
                update = updates.recv() => match update {
                    Some(PodUpdate::Changed(pod)) => {
                        // New labels or annotations reach downwardAPI files at once.
                        if pod.metadata.labels != self.pod.metadata.labels
                            || pod.metadata.annotations != self.pod.metadata.annotations
                        {
                            self.refresh_at = Some(Instant::now());
                        }
                        self.pod = *pod;
                    }
                    Some(PodUpdate::Deleted) | None => {
                        Box::pin(self.tear_down()).await;
                        return;
                    }
                },
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// Moves the pod on as far as it can go now; returns when to look again.
    pub async fn step(&mut self) -> Result<Option<Instant>, RuntimeError> {
        let spec = self.spec();
        loop {
            match self.state.clone() {
                PodState::Pending => {
                    if !self.make_volumes().await? {
                        return Ok(Some(Instant::now() + Duration::from_secs(5)));
                    }
                    // A pod the runtime still runs from before this agent started is taken
                    // over, not started twice.
                    let uid = self.pod.metadata.uid.clone().unwrap_or_default();
                    if let Some(adopted) = self.site.runtime.adopt(&uid) {
                        self.write_hosts(&adopted.sandbox).await;
                        self.state = self.take_over(adopted);
                        continue;
                    }
                    let annotations = self.pod.metadata.annotations.clone().unwrap_or_default();
                    let sandbox = self
                        .site
                        .runtime
                        .run_pod_sandbox(SandboxConfig {
                            name: self.pod.metadata.name.clone().unwrap_or_default(),
                            namespace: self.pod.metadata.namespace.clone().unwrap_or_default(),
                            uid: self.pod.metadata.uid.clone().unwrap_or_default(),
                            annotations,
                            restart_policy: self.restart_policy(),
                            host_network: spec.host_network.unwrap_or(false),
                        })
                        .await
                        .inspect_err(|e| {
                            self.event(
                                "Warning",
                                "FailedCreatePodSandBox",
                                format!("Failed to create pod sandbox: {e}"),
                            );
                        })?;
                    self.write_hosts(&sandbox).await;
                    self.state = PodState::Initializing { sandbox, next: 0 };
                }
                PodState::Initializing { sandbox, next } => {
                    let inits = spec.init_containers.clone().unwrap_or_default();
                    if next >= inits.len() {
                        for (i, c) in spec.containers.iter().enumerate() {
                            self.start(&sandbox, c, false, i).await?;
                        }
                        self.state = PodState::Running { sandbox };
                        continue;
                    }
                    let slot = &self.init[next];
                    match &slot.id {
                        None => {
                            // A failed init container waits out its back-off first.
                            if let Some(at) = slot.restart_at
                                && at > Instant::now()
                            {
                                return Ok(Some(at));
                            }
                            self.start(&sandbox, &inits[next], true, next).await?;
                        }
                        Some(id) => {
                            let status = self.site.runtime.container_status(id).await?;
                            self.init[next].running =
                                matches!(status.state, ContainerState::Running { .. });
                            match status.state {
                                ContainerState::Exited { exit_code: 0, .. } => {
                                    self.state = PodState::Initializing {
                                        sandbox,
                                        next: next + 1,
                                    };
                                }
                                ContainerState::Exited { .. } => {
                                    if self.restart_policy() == "Never" {
                                        self.state = PodState::Finished { sandbox };
                                    } else {
                                        let slot = &mut self.init[next];
                                        slot.last = Some(status.state);
                                        slot.restart_at =
                                            Some(Instant::now() + restart_backoff(slot.restarts));
                                        slot.restarts += 1;
                                        slot.id = None;
                                    }
                                }
                                _ => {
                                    return Ok(status
                                        .changes_at
                                        .or(Some(Instant::now() + Duration::from_secs(1))));
                                }
                            }
                        }
                    }
                }
                PodState::Running { sandbox } => return self.tend(&sandbox, &spec).await,
                PodState::Finished { sandbox } if sandbox.ready => {
                    // As a kubelet does: a pod that runs nothing more gives its sandbox's
                    // network back (its IP stays in its status, its logs on the node).
                    self.site.runtime.stop_pod_sandbox(&sandbox.id).await?;
                    self.state = PodState::Finished {
                        sandbox: SandboxInfo {
                            ready: false,
                            ..sandbox
                        },
                    };
                    return Ok(None);
                }
                PodState::Finished { .. } | PodState::Gone => return Ok(None),
            }
        }
    }

    async fn start(
        &mut self,
        sandbox: &SandboxInfo,
        c: &core::Container,
        init: bool,
        index: usize,
    ) -> Result<(), RuntimeError> {
        // The environment first: a ConfigMap, Secret or key it needs that is missing keeps the
        // container from being created (CreateContainerConfigError), tried again later.
        let resolved = match self.sources().await {
            Ok(sources) => env::resolve(
                &self.pod,
                c,
                env::Place {
                    pod_ip: &sandbox.ip,
                    host_ip: &self.site.host_ip,
                    allocatable: &self.site.allocatable,
                },
                &sources,
            ),
            Err(e) => Err(format!("reading the environment's sources: {e}")),
        };
        let env = match resolved {
            Ok(env) => env,
            Err(message) => {
                self.event("Warning", "Failed", format!("Error: {message}"));
                let slot = if init {
                    &mut self.init[index]
                } else {
                    &mut self.containers[index]
                };
                slot.waiting = Some(Waiting {
                    reason: "CreateContainerConfigError",
                    message,
                });
                slot.restart_at = Some(Instant::now() + CONFIG_RETRY);
                slot.id = None;
                slot.running = false;
                return Ok(());
            }
        };
        if !self.ensure_image(c, init, index).await? {
            return Ok(());
        }
        let image_entrypoint = c.command.as_ref().is_none_or(Vec::is_empty);
        let mut command = c.command.clone().unwrap_or_default();
        command.extend(c.args.clone().unwrap_or_default());
        let command = command.iter().map(|a| env::expand(a, &env)).collect();
        let id = self
            .site
            .runtime
            .create_container(
                &sandbox.id,
                ContainerConfig {
                    name: c.name.clone(),
                    image: c.image.clone().unwrap_or_default(),
                    command,
                    image_entrypoint,
                    init,
                    stdin: c.stdin.unwrap_or(false),
                    stdin_once: c.stdin_once.unwrap_or(false),
                    tty: c.tty.unwrap_or(false),
                    env,
                    working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
                    mounts: self.mounts_of(c),
                    limits: limits_of(c),
                },
            )
            .await?;
        self.event(
            "Normal",
            "Created",
            format!("Created container: {}", c.name),
        );
        // A container that cannot start has ended (StartError); the restart policy and its
        // back-off take it from there.
        let started = match self.site.runtime.start_container(&id).await {
            Ok(()) => {
                self.event("Normal", "Started", format!("Started container {}", c.name));
                self.post_start(c, &id, &sandbox.ip).await;
                true
            }
            Err(e) => {
                tracing::warn!(pod = %name_of(&self.pod), container = %c.name, error = %e, "a container could not start");
                self.event("Warning", "Failed", format!("Error: {e}"));
                false
            }
        };
        let slot = if init {
            &mut self.init[index]
        } else {
            &mut self.containers[index]
        };
        slot.id = Some(id);
        slot.restart_at = None;
        slot.waiting = None;
        slot.running = started;
        if !init {
            let (probes, problems) = probe::ContainerProbes::of(c, Instant::now());
            slot.probes = probes;
            for problem in problems {
                self.event("Warning", "Unhealthy", format!("{}: {problem}", c.name));
            }
        }
        Ok(())
    }

    /// The bookkeeping of init container or container `index`.
    fn slot(&mut self, init: bool, index: usize) -> &mut Slot {
        if init {
            &mut self.init[index]
        } else {
            &mut self.containers[index]
        }
    }

    /// Runs the container's postStart hook; a failure kills the container (its restart
    /// policy takes it from there).
    async fn post_start(&self, c: &core::Container, id: &str, ip: &str) {
        let handler = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref());
        let Some(hook) = handler.and_then(|h| hooks::of(h, c)) else {
            return;
        };
        if let Err(message) = hooks::run(
            &hook,
            self.site.runtime.as_ref(),
            id,
            ip,
            Duration::from_secs(30),
        )
        .await
        {
            self.event(
                "Warning",
                "FailedPostStartHook",
                format!("PostStartHook failed: {message}"),
            );
            if let Err(e) = self.site.runtime.stop_container(id, self.grace()).await {
                tracing::warn!(container = %id, error = %e, "a container whose postStart hook failed could not be stopped");
            }
        }
    }

    /// Running: restarts containers that ended, per the policy and back-off.
    async fn tend(
        &mut self,
        sandbox: &SandboxInfo,
        spec: &core::PodSpec,
    ) -> Result<Option<Instant>, RuntimeError> {
        let policy = self.restart_policy();
        let now = Instant::now();
        let mut wake: Option<Instant> = self.refresh_volumes(now).await?;
        let mut ended = 0;
        for (i, c) in spec.containers.iter().enumerate() {
            let soonest = |w: Option<Instant>, t: Instant| Some(w.map_or(t, |w| w.min(t)));
            if let Some(at) = self.containers[i].restart_at {
                if now >= at {
                    self.start(sandbox, c, false, i).await?;
                } else {
                    wake = soonest(wake, at);
                    continue;
                }
                // Its environment could not be made: tried again later.
                if let Some(again) = self.containers[i].restart_at {
                    wake = soonest(wake, again);
                    continue;
                }
            }
            let Some(id) = self.containers[i].id.clone() else {
                continue;
            };
            let status = self.site.runtime.container_status(&id).await?;
            self.containers[i].running = matches!(status.state, ContainerState::Running { .. });
            if let Some(at) = status.changes_at {
                wake = soonest(wake, at);
            }
            let decided = self.site.runtime.readiness(&id);
            if let Some((false, Some(ready_at))) = decided
                && ready_at > now
            {
                wake = soonest(wake, ready_at);
            }
            // Probes, where the runtime does not decide readiness itself (hollow nodes do).
            if matches!(status.state, ContainerState::Running { .. }) && decided.is_none() {
                let runtime = self.site.runtime.clone();
                let tick = self.containers[i]
                    .probes
                    .tick(runtime.as_ref(), &id, &sandbox.ip, now)
                    .await;
                for message in tick.unhealthy {
                    self.event("Warning", "Unhealthy", message);
                }
                if let Some(at) = tick.wake {
                    wake = soonest(wake, at);
                }
                if let Some(which) = tick.kill {
                    self.event(
                        "Normal",
                        "Killing",
                        format!(
                            "Container {} failed {which} probe, will be restarted",
                            c.name
                        ),
                    );
                    // It ends, its end wakes the worker, and the restart policy restarts it.
                    self.stop_gracefully(Some(c), &id, &sandbox.ip, self.grace())
                        .await?;
                    continue;
                }
            }
            if let ContainerState::Exited { exit_code, .. } = status.state {
                let restart = policy == "Always" || (policy == "OnFailure" && exit_code != 0);
                if restart {
                    let slot = &mut self.containers[i];
                    let backoff = restart_backoff(slot.restarts);
                    slot.last = Some(status.state.clone());
                    slot.restarts += 1;
                    slot.restart_at = Some(now + backoff);
                    self.event(
                        "Warning",
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}",
                            c.name,
                            name_of(&self.pod)
                        ),
                    );
                    wake = soonest(wake, now + backoff);
                } else {
                    ended += 1;
                }
            }
        }
        if ended == spec.containers.len() && !spec.containers.is_empty() {
            self.state = PodState::Finished {
                sandbox: sandbox.clone(),
            };
            return Ok(None);
        }
        Ok(wake)
    }
}
