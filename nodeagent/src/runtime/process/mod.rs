//! The `process` runtime: each container is a process of this host, started from the
//! container's command (the image name is only recorded; the command must exist here). A
//! sandbox is a directory under the node's root, `pods/<namespace>_<name>_<uid>/`, holding the
//! containers' logs (`<container>/<restart>.log`, CRI format) the way the kubelet lays them
//! out. Each container runs in a process group of its own, so that stopping it (SIGTERM, then
//! SIGKILL after the grace period) reaches everything it started.
//!
//! Pods get their network from a [`PodNetwork`]: a namespace of their own on a CNI bridge (as
//! root), or the host's; volumes are bind-mounted in a mount namespace of the container's own
//! and limits set in its cgroups. Each container runs under a [`keeper`], and every sandbox
//! and container is [`record`]ed on disk, so that a node agent started again adopts the
//! containers still running ([`ProcessRuntime::recover`]) instead of starting them twice.

mod inside;
mod keeper;
pub mod record;
mod recover;
mod stdin;
mod waiter;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::blocking;
use super::entry::Entry;
use super::network::{HostNetwork, PodNet, PodNetwork};
use super::{
    Adopted, ContainerConfig, ContainerState, ContainerStatus, PodPorts, Runtime, RuntimeError,
    SandboxConfig, SandboxInfo,
};
use keeper::Pipes;
use record::{ContainerRecord, SandboxRecord};
use waiter::Waiter;

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Writes a container's record; a failure is logged (the container runs on; only its
/// adoption by a later agent would miss it).
fn persist(record: &ContainerRecord) {
    let path = record::container_path(&record.log);
    if let Err(e) = record::write(&path, record) {
        tracing::warn!(record = %path.display(), error = %e, "a container's record could not be written");
    }
}

/// [`persist`] on the blocking pool, awaited (so that two writes of one record keep their
/// order): file creation can take milliseconds on a busy filesystem, and the runtime's worker
/// threads carry the node's API traffic meanwhile.
async fn persist_off(record: ContainerRecord) {
    if let Err(e) = blocking(move || {
        persist(&record);
        Ok(())
    })
    .await
    {
        tracing::error!(error = %e, "writing a container's record failed");
    }
}

/// A sandbox: the pod's directory and network.
#[derive(Debug, Clone)]
struct Sandbox {
    info: SandboxInfo,
    /// The pod's namespace and name.
    pod: (String, String),
    dir: PathBuf,
    net: PodNet,
}

/// One container's record.
#[derive(Debug)]
struct Proc {
    sandbox: String,
    config: ContainerConfig,
    log: PathBuf,
    state: ContainerState,
    /// The process group (its keeper's pid), while it runs.
    pid: Option<u32>,
    /// That process's start time (to tell it from a later process with its pid).
    start_ticks: Option<u64>,
    /// Its keeper's pipes and exit file.
    pipes: Pipes,
    /// Its stdin, as attach sees it.
    stdin: stdin::StdinState,
    /// Flips to true when the process has ended.
    ended: watch::Sender<bool>,
}

impl Proc {
    fn record(&self, id: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.to_owned(),
            sandbox: self.sandbox.clone(),
            config: self.config.clone(),
            log: self.log.clone(),
            state: self.state.clone(),
            pid: self.pid,
            start_ticks: self.start_ticks,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Proc>,
    next: u64,
}

/// The runtime of one node.
#[derive(Debug, Clone)]
pub struct ProcessRuntime {
    root: PathBuf,
    network: Arc<dyn PodNetwork>,
    /// Whether mount namespaces can be made (root).
    can_mount: bool,
    /// Where containers' limits are set.
    cgroups: super::cgroups::Hierarchy,
    /// How containers' log files are rotated.
    rotation: super::crilog::Rotation,
    inner: Arc<Mutex<Inner>>,
}

fn poisoned() -> RuntimeError {
    RuntimeError::Failed("the process runtime's state is poisoned".into())
}

/// Sends `signal` to the process group `pid` leads; a group already gone is no error.
fn signal_group(pid: u32, signal: rustix::process::Signal) -> Result<(), RuntimeError> {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Err(RuntimeError::Failed(format!("no such process {pid}")));
    };
    match rustix::process::kill_process_group(pid, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
        Err(e) => Err(RuntimeError::Failed(format!(
            "signalling process group {pid:?}: {e}"
        ))),
    }
}

/// Where `program` is: a path (relative to `workdir`), or a name looked up in the `PATH` of
/// `env`; `None` when it is not an executable file.
fn find_program(program: &str, env: &[(String, String)], workdir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = workdir.join(program);
        return executable(&path).then_some(path);
    }
    let path = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
    path.split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|p| executable(p))
}

impl ProcessRuntime {
    /// A runtime keeping its pods under `root`, whose pods share the host's network and
    /// answer at `address` (the node's).
    pub fn new(root: impl Into<PathBuf>, address: &str) -> ProcessRuntime {
        ProcessRuntime {
            root: root.into(),
            network: Arc::new(HostNetwork::new(address)),
            can_mount: rustix::process::geteuid().is_root(),
            cgroups: super::cgroups::Hierarchy::detect(),
            rotation: super::crilog::Rotation::default(),
            inner: Arc::default(),
        }
    }

    /// The same, rotating containers' log files as `rotation` says.
    pub fn with_log_rotation(mut self, rotation: super::crilog::Rotation) -> ProcessRuntime {
        self.rotation = rotation;
        self
    }

    /// The same, giving pods their network through `network`.
    pub fn with_network(mut self, network: Arc<dyn PodNetwork>) -> ProcessRuntime {
        self.network = network;
        self
    }

    /// Where the node keeps its pods.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// What a container's first process enters before its program runs: `groups`, the
    /// pod's network namespace, and (as root) a mount namespace with `mounts` in place and
    /// `workdir` entered.
    fn entry(
        &self,
        groups: &[PathBuf],
        net: &PodNet,
        mounts: &[super::mounts::Mount],
        workdir: &Path,
    ) -> std::io::Result<Entry> {
        let mut entry = Entry::default().cgroups(groups)?;
        if let Some(ns) = &net.netns {
            entry = entry.network(&super::network::netns_path(ns))?;
        }
        if !mounts.is_empty() {
            entry = entry.mounts(&super::mounts::plan(mounts), workdir)?;
        }
        Ok(entry)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> Result<T, RuntimeError> {
        let mut inner = self.inner.lock().map_err(|_| poisoned())?;
        Ok(f(&mut inner))
    }

    /// Marks a container ended with `exit_code` and `reason`.
    fn ended(&self, id: &str, exit_code: i32, reason: &str) {
        let done = self.with(|inner| {
            inner.containers.get_mut(id).map(|proc| {
                let started_at = match &proc.state {
                    ContainerState::Running { started_at } => started_at.clone(),
                    _ => now(),
                };
                proc.state = ContainerState::Exited {
                    started_at,
                    finished_at: now(),
                    exit_code,
                    reason: reason.to_owned(),
                };
                proc.pid = None;
                proc.start_ticks = None;
                proc.record(id)
            })
        });
        match done {
            Ok(Some(record)) => persist(&record),
            Ok(None) => {}
            Err(_) => tracing::error!(container = %id, "the process runtime's state is poisoned"),
        }
        // Only once its record says so: whoever waits for the end may remove the container
        // (and its directory) next.
        if self
            .with(|inner| inner.containers.get(id).map(|p| p.ended.send_replace(true)))
            .is_err()
        {
            tracing::error!(container = %id, "the process runtime's state is poisoned");
        }
    }

    /// Marks container `id` ended with `StartError` and says why.
    fn start_error(&self, id: &str, why: String) -> RuntimeError {
        self.ended(id, 128, "StartError");
        RuntimeError::Failed(why)
    }

    async fn start(&self, id: String) -> Result<(), RuntimeError> {
        let (config, log, dir, net) = self.with(|inner| {
            let proc = inner
                .containers
                .get(&id)
                .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))?;
            let sandbox = inner
                .sandboxes
                .get(&proc.sandbox)
                .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {}", proc.sandbox)))?;
            Ok::<_, RuntimeError>((
                proc.config.clone(),
                proc.log.clone(),
                sandbox.dir.clone(),
                sandbox.net.clone(),
            ))
        })??;
        if config.command.is_empty() {
            return Err(self.start_error(&id, format!(
                "container {} has no command: the process runtime runs the command of the pod spec, not an image's entrypoint",
                config.name
            )));
        }
        let workdir = config
            .working_dir
            .as_ref()
            .map_or_else(|| dir.clone(), PathBuf::from);
        // Found before it is wrapped (`ip netns exec` would only fail after starting).
        if find_program(&config.command[0], &config.env, &workdir).is_none() {
            return Err(self.start_error(&id, format!(
                "starting {:?} for container {}: executable file not found in $PATH or not executable",
                config.command[0], config.name
            )));
        }
        // Mounts need a mount namespace, which only root can make; the command then runs in
        // the pod's network (an `ip netns exec` around it all).
        let mounts = if self.can_mount {
            config.mounts.as_slice()
        } else {
            if !config.mounts.is_empty() {
                tracing::warn!(container = %config.name, "not root: the container's volumes are not mounted");
            }
            &[]
        };
        let groups = match self.cgroups.create(&id, &config.limits) {
            Ok(groups) => groups,
            Err(e) => {
                self.ended(&id, 128, "StartError");
                return Err(e);
            }
        };
        // The keeper runs the command; the keeper's process enters the container's cgroups,
        // the pod's network and its mounts between fork and exec.
        let log_pipes = Pipes::beside(&log);
        let input = keeper::Stdin::of(config.stdin, config.stdin_once);
        let command = keeper::wrap(&log_pipes, &config.command, input, config.tty);
        let entry = match self.entry(&groups, &net, mounts, &workdir) {
            Ok(entry) => entry,
            Err(e) => {
                return Err(self.start_error(
                    &id,
                    format!("preparing the place of container {}: {e}", config.name),
                ));
            }
        };
        let Some((program, args)) = command.split_first() else {
            return Err(RuntimeError::Failed("an empty command".into()));
        };
        let pipes = log_pipes;
        if let Some(dir) = log.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| RuntimeError::Failed(format!("creating {}: {e}", dir.display())))?;
        }
        let made = pipes.clone();
        blocking(move || made.make(input)).await.map_err(|e| {
            RuntimeError::Failed(format!("making the pipes of {}: {e}", log.display()))
        })?;
        let readers = pipes.open();
        // Both ends of the stdin pipe are open before the keeper starts: its read end is the
        // keeper's stdin, and with stdinOnce the agent holds the only writer.
        let stdin_failed = |e: std::io::Error| {
            RuntimeError::Failed(format!("opening the stdin of {}: {e}", log.display()))
        };
        let keeper_stdin = match input {
            keeper::Stdin::Null => Stdio::null(),
            keeper::Stdin::Held | keeper::Stdin::Once => {
                Stdio::from(pipes.stdin_reader().map_err(stdin_failed)?)
            }
        };
        let stdin_state = stdin::StdinState::open(input, &pipes).map_err(stdin_failed)?;
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            // (a working directory on a volume exists only once mounted: the wrapper enters it)
            .current_dir(if workdir.is_dir() { &workdir } else { &dir })
            .env_clear()
            .envs(config.env.iter().map(|(k, v)| (k, v)))
            .stdin(keeper_stdin)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let explain = match entry.install(&mut command) {
            Ok(explain) => explain,
            Err(e) => {
                return Err(self.start_error(
                    &id,
                    format!("preparing the start of container {}: {e}", config.name),
                ));
            }
        };
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                return Err(self.start_error(
                    &id,
                    format!(
                        "starting {:?} for container {}: {}",
                        config.command[0],
                        config.name,
                        explain.error(&e)
                    ),
                ));
            }
        };
        let pid = child.id();
        let record = self.with(|inner| {
            inner.containers.get_mut(&id).map(|proc| {
                proc.pid = pid;
                proc.start_ticks = pid.and_then(record::start_ticks);
                proc.stdin = stdin_state;
                proc.state = ContainerState::Running { started_at: now() };
                proc.ended.send_replace(false);
                proc.record(&id)
            })
        })?;
        if let Some(record) = record {
            persist_off(record).await;
        }
        self.follow(id, Waiter::Child(child), pipes, readers, log);
        Ok(())
    }

    async fn stop(&self, id: String, grace: Duration) -> Result<(), RuntimeError> {
        let (pid, mut ended) = self.with(|inner| {
            inner
                .containers
                .get(&id)
                .map(|p| (p.pid, p.ended.subscribe()))
                .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))
        })??;
        let Some(pid) = pid else { return Ok(()) };
        signal_group(pid, rustix::process::Signal::TERM)?;
        let gone = tokio::time::timeout(grace, ended.wait_for(|e| *e))
            .await
            .is_ok();
        if !gone {
            tracing::info!(container = %id, grace_s = grace.as_secs(), "the container outlived its grace period; killing it");
            signal_group(pid, rustix::process::Signal::KILL)?;
            if tokio::time::timeout(Duration::from_secs(10), ended.wait_for(|e| *e))
                .await
                .is_err()
            {
                return Err(RuntimeError::Failed(format!(
                    "container {id} did not end after SIGKILL"
                )));
            }
        }
        Ok(())
    }

    /// Stops every container (the node agent is shutting down and its processes go with it).
    pub async fn stop_all(&self, grace: Duration) {
        let ids: Vec<String> = self
            .with(|inner| inner.containers.keys().cloned().collect())
            .unwrap_or_default();
        let stops = ids.into_iter().map(|id| {
            let runtime = self.clone();
            async move {
                if let Err(e) = runtime.stop(id.clone(), grace).await {
                    tracing::warn!(container = %id, error = %e, "a container could not be stopped");
                }
            }
        });
        futures::future::join_all(stops).await;
        let uids: Vec<String> = self
            .with(|inner| {
                inner
                    .sandboxes
                    .values()
                    .map(|s| s.info.pod_uid.clone())
                    .collect()
            })
            .unwrap_or_default();
        for uid in uids {
            if let Err(e) = self.network.detach(&uid).await {
                tracing::warn!(pod = %uid, error = %e, "a pod's network could not be removed");
            }
        }
        self.network.close().await;
        self.cgroups.close();
    }
}

impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn run_pod_sandbox(
        &self,
        config: SandboxConfig,
    ) -> BoxFuture<'_, Result<SandboxInfo, RuntimeError>> {
        async move {
            let dir = self.root.join("pods").join(format!(
                "{}_{}_{}",
                config.namespace, config.name, config.uid
            ));
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| RuntimeError::Failed(format!("creating {}: {e}", dir.display())))?;
            let net = self.network.attach(&config.uid).await?;
            let info = SandboxInfo {
                id: format!("sandbox-{}", config.uid),
                pod_uid: config.uid.clone(),
                ip: net.ip.clone(),
                ready: true,
            };
            let record = SandboxRecord {
                id: info.id.clone(),
                pod_uid: info.pod_uid.clone(),
                namespace: config.namespace.clone(),
                name: config.name.clone(),
                ip: net.ip.clone(),
                netns: net.netns.clone(),
            };
            let path = record::sandbox_path(&dir);
            if let Err(e) = blocking(move || record::write(&path, &record)).await {
                tracing::warn!(pod = %config.name, error = %e, "a sandbox's record could not be written");
            }
            self.with(|inner| {
                inner.sandboxes.insert(
                    info.id.clone(),
                    Sandbox {
                        info: info.clone(),
                        pod: (config.namespace.clone(), config.name.clone()),
                        dir,
                        net,
                    },
                );
            })?;
            Ok(info)
        }
        .boxed()
    }

    fn stop_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        async move {
            let ids: Vec<String> = self.with(|inner| {
                inner
                    .containers
                    .iter()
                    .filter(|(_, p)| p.sandbox == id)
                    .map(|(c, _)| c.clone())
                    .collect()
            })?;
            for container in ids {
                self.stop(container, Duration::from_secs(2)).await?;
            }
            let uid = self.with(|inner| {
                inner.sandboxes.get_mut(&id).map(|s| {
                    s.info.ready = false;
                    s.info.pod_uid.clone()
                })
            })?;
            if let Some(uid) = uid {
                self.network.detach(&uid).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn remove_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        async move {
            let removed = self.with(|inner| {
                inner.containers.retain(|_, p| p.sandbox != id);
                inner.sandboxes.remove(&id)
            })?;
            if let Some(sandbox) = &removed {
                self.network.detach(&sandbox.info.pod_uid).await?;
            }
            let dir = removed.map(|s| s.dir);
            if let Some(dir) = dir
                && let Err(e) = tokio::fs::remove_dir_all(&dir).await
                && e.kind() != std::io::ErrorKind::NotFound
            {
                return Err(RuntimeError::Failed(format!(
                    "removing {}: {e}",
                    dir.display()
                )));
            }
            Ok(())
        }
        .boxed()
    }

    fn list_pod_sandboxes(&self) -> BoxFuture<'_, Result<Vec<SandboxInfo>, RuntimeError>> {
        async move { self.with(|inner| inner.sandboxes.values().map(|s| s.info.clone()).collect()) }
            .boxed()
    }

    fn create_container(
        &self,
        sandbox: &str,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<String, RuntimeError>> {
        let sandbox = sandbox.to_owned();
        async move {
            let created = self.with(|inner| {
                let dir = inner
                    .sandboxes
                    .get(&sandbox)
                    .map(|s| s.dir.clone())
                    .ok_or_else(|| RuntimeError::NotFound(format!("sandbox {sandbox}")))?;
                // The kubelet's layout: one file per start of the container.
                let starts = inner
                    .containers
                    .values()
                    .filter(|p| p.sandbox == sandbox && p.config.name == config.name)
                    .count();
                inner.next += 1;
                let id = format!("process-{}", inner.next);
                let log = dir.join(&config.name).join(format!("{starts}.log"));
                let proc = Proc {
                    sandbox,
                    config,
                    pipes: Pipes::beside(&log),
                    stdin: stdin::StdinState::Absent,
                    log,
                    state: ContainerState::Created,
                    pid: None,
                    start_ticks: None,
                    ended: watch::channel(false).0,
                };
                let record = proc.record(&id);
                inner.containers.insert(id.clone(), proc);
                Ok::<_, RuntimeError>((id, record))
            })?;
            let (id, record) = created?;
            persist_off(record).await;
            Ok(id)
        }
        .boxed()
    }

    fn start_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        self.start(id.to_owned()).boxed()
    }

    fn stop_container(&self, id: &str, grace: Duration) -> BoxFuture<'_, Result<(), RuntimeError>> {
        self.stop(id.to_owned(), grace).boxed()
    }

    fn remove_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let id = id.to_owned();
        async move {
            self.with(|inner| {
                if inner.containers.get(&id).is_some_and(|p| p.pid.is_some()) {
                    return Err(RuntimeError::Failed(format!(
                        "container {id} is running: stop it first"
                    )));
                }
                Ok(inner.containers.remove(&id))
            })??
            .map_or(Ok(()), |proc| {
                let path = record::container_path(&proc.log);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!(record = %path.display(), error = %e, "a container's record could not be removed"),
                }
                proc.pipes.remove().map_err(|e| {
                    RuntimeError::Failed(format!("removing the pipes of container {id}: {e}"))
                })
            })
        }
        .boxed()
    }

    fn container_status(&self, id: &str) -> BoxFuture<'_, Result<ContainerStatus, RuntimeError>> {
        let id = id.to_owned();
        async move {
            self.with(|inner| {
                let proc = inner
                    .containers
                    .get(&id)
                    .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))?;
                Ok(ContainerStatus {
                    id: id.clone(),
                    name: proc.config.name.clone(),
                    image: proc.config.image.clone(),
                    state: proc.state.clone(),
                    changes_at: None,
                    log_path: Some(proc.log.clone()),
                    image_ref: None,
                })
            })?
        }
        .boxed()
    }

    fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(i32, String), RuntimeError>> {
        let id = id.to_owned();
        async move { self.run_inside(&id, &command, timeout).await }.boxed()
    }

    fn exec(
        &self,
        id: &str,
        request: super::exec::ExecRequest,
    ) -> BoxFuture<'_, Result<super::exec::ExecSession, RuntimeError>> {
        let id = id.to_owned();
        async move {
            let place = self.inside(&id, &request.command)?;
            super::exec::spawn(&place.command, &place.env, &place.cwd, &request)
        }
        .boxed()
    }

    fn attach(
        &self,
        id: &str,
        request: super::exec::ExecRequest,
    ) -> BoxFuture<'_, Result<super::exec::ExecSession, RuntimeError>> {
        let id = id.to_owned();
        async move { self.attach_session(&id, request).await }.boxed()
    }

    fn recover(&self) -> BoxFuture<'_, usize> {
        self.recover_records().boxed()
    }

    fn adopt(&self, pod_uid: &str) -> Option<Adopted> {
        self.adopted(pod_uid)
    }

    fn pod_ports(
        &self,
        namespace: &str,
        pod: &str,
    ) -> BoxFuture<'_, Result<PodPorts, RuntimeError>> {
        let found = self
            .with(|inner| {
                inner
                    .sandboxes
                    .values()
                    .filter(|s| s.pod.0 == namespace && s.pod.1 == pod && s.info.ready)
                    .map(|s| s.net.netns.clone())
                    .next()
            })
            .ok()
            .flatten();
        let what = format!("{namespace}/{pod}");
        Box::pin(async move {
            match found {
                Some(Some(netns)) => Ok(PodPorts::Namespace(
                    std::path::Path::new("/run/netns").join(netns),
                )),
                Some(None) => Ok(PodPorts::Host),
                None => Err(RuntimeError::NotFound(format!("pod {what}"))),
            }
        })
    }

    fn find_container(&self, namespace: &str, pod: &str, container: &str) -> Option<String> {
        self.with(|inner| {
            let sandboxes: Vec<&String> = inner
                .sandboxes
                .iter()
                .filter(|(_, s)| s.pod.0 == namespace && s.pod.1 == pod)
                .map(|(id, _)| id)
                .collect();
            // The running one first, else the latest (ids grow with each container made).
            inner
                .containers
                .iter()
                .filter(|(_, p)| sandboxes.contains(&&p.sandbox) && p.config.name == container)
                .max_by_key(|(id, p)| (p.pid.is_some(), id.len(), (*id).clone()))
                .map(|(id, _)| id.clone())
        })
        .ok()
        .flatten()
    }

    fn changed(&self, id: &str) -> BoxFuture<'static, ()> {
        let ended = self
            .with(|inner| inner.containers.get(id).map(|p| p.ended.subscribe()))
            .ok()
            .flatten();
        async move {
            match ended {
                Some(mut ended) => {
                    if ended.wait_for(|e| *e).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        }
        .boxed()
    }

    fn writes_log(&self, path: &Path) -> bool {
        self.with(|inner| {
            inner
                .containers
                .values()
                .any(|p| p.log == path && p.pid.is_some())
        })
        .unwrap_or(false)
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.stop_all(Duration::from_secs(10)).boxed()
    }
}
