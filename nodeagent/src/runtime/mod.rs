//! The container runtime, shaped like CRI v1's RuntimeService: pod sandboxes, containers,
//! their status, and exec. The pod workers drive any back end through it; `sim` (a hollow
//! node), `process` (host processes) and `cri` (a CRI v1 runtime such as containerd).

pub mod attach;
pub mod cgroups;
pub mod cri;
pub mod crilog;
pub mod entry;
pub mod exec;
pub mod image;
pub mod mounts;
pub mod netns;
pub mod network;
pub mod process;
pub mod sim;

/// `f` on the blocking pool: file system work that creates files, which can take milliseconds
/// on a busy filesystem while the runtime's worker threads carry the node's API traffic.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

use std::collections::BTreeMap;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::time::Instant;

/// What a runtime call can fail with.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeError {
    /// No such sandbox or container.
    #[error("{0} not found")]
    NotFound(String),
    /// The runtime refused or failed.
    #[error("{0}")]
    Failed(String),
    /// An image could not be pulled (`ErrImagePull`).
    #[error("{0}")]
    ImagePull(String),
    /// An image is missing and its policy says never to pull it (`ErrImageNeverPull`).
    #[error("{0}")]
    ImageNeverPull(String),
}

/// What a sandbox is made from (CRI's PodSandboxConfig, the parts ferry uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod uid (sandboxes and containers are labelled with it, to be found after a restart).
    pub uid: String,
    /// The pod's annotations (the `sim` runtime reads its knobs there).
    pub annotations: BTreeMap<String, String>,
    /// `spec.restartPolicy`.
    pub restart_policy: String,
    /// `spec.hostNetwork`: the pod uses the node's network namespace.
    pub host_network: bool,
}

/// A sandbox that exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// Its id.
    pub id: String,
    /// The pod uid it belongs to.
    pub pod_uid: String,
    /// Its IP.
    pub ip: String,
    /// Stopped or not.
    pub ready: bool,
}

/// What a container is made from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerConfig {
    /// Container name.
    pub name: String,
    /// Image.
    pub image: String,
    /// Command and args (expanded).
    pub command: Vec<String>,
    /// The spec gives no `command`: the image's entrypoint runs, with `command` (the spec's
    /// args) as its arguments, or with the image's own when there are none. Runtimes without
    /// images run `command` as it is.
    #[serde(default)]
    pub image_entrypoint: bool,
    /// Whether it is an init container (runs to completion before the others).
    pub init: bool,
    /// `stdin`, `stdinOnce` and `tty` of the spec (a container `kubectl attach -i` can
    /// write to).
    #[serde(default)]
    pub stdin: bool,
    /// `stdinOnce`.
    #[serde(default)]
    pub stdin_once: bool,
    /// `tty`.
    #[serde(default)]
    pub tty: bool,
    /// Its environment, in order.
    pub env: Vec<(String, String)>,
    /// `workingDir`, when the spec sets one.
    pub working_dir: Option<String>,
    /// The volumes it mounts.
    pub mounts: Vec<mounts::Mount>,
    /// Its resource limits.
    pub limits: cgroups::Limits,
}

/// A container's state, as CRI reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running since then.
    Running {
        /// Start time (RFC 3339).
        started_at: String,
    },
    /// Ended.
    Exited {
        /// Start time.
        started_at: String,
        /// End time.
        finished_at: String,
        /// Exit code.
        exit_code: i32,
        /// `Completed`, `Error`, `OOMKilled`.
        reason: String,
    },
}

/// A container a runtime still has for a pod it finds again after the node agent restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptedContainer {
    /// Its id.
    pub id: String,
    /// Its name in the pod spec.
    pub name: String,
    /// Whether it is an init container.
    pub init: bool,
    /// How many times the container of that name was started before this one.
    pub restarts: u32,
    /// Its state now.
    pub state: ContainerState,
    /// The state of the start before it, if any (`lastState`).
    pub previous: Option<ContainerState>,
}

/// A pod's sandbox and the latest container of each name, as found again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    /// The sandbox.
    pub sandbox: SandboxInfo,
    /// The latest container of each name.
    pub containers: Vec<AdoptedContainer>,
}

/// One container's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Its id.
    pub id: String,
    /// Its name in the pod.
    pub name: String,
    /// The image it runs.
    pub image: String,
    /// The state.
    pub state: ContainerState,
    /// When its state will change by itself (a hollow container's planned exit), if known.
    pub changes_at: Option<Instant>,
    /// Its log file (CRI format), when it writes one.
    pub log_path: Option<std::path::PathBuf>,
    /// The image it runs as the runtime resolved it (`imageID`), when it has images.
    pub image_ref: Option<String>,
}

/// Where a pod's ports are reached from the node (`kubectl port-forward` dials
/// `localhost:PORT` there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodPorts {
    /// Inside the network namespace at this path.
    Namespace(std::path::PathBuf),
    /// On the node's own network (a pod in the host network, or a runtime without network
    /// namespaces).
    Host,
}

/// The runtime.
pub trait Runtime: Send + Sync + 'static {
    /// The runtime's name (`sim`, `process`, `cri`).
    fn name(&self) -> &'static str;
    /// The scheme of container ids in pod status (`containerd://...`); the runtime's name
    /// unless it knows better.
    fn id_scheme(&self) -> String {
        self.name().to_owned()
    }
    /// Creates and starts a sandbox.
    fn run_pod_sandbox(
        &self,
        config: SandboxConfig,
    ) -> BoxFuture<'_, Result<SandboxInfo, RuntimeError>>;
    /// Stops a sandbox and everything in it.
    fn stop_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>>;
    /// Removes a stopped sandbox.
    fn remove_pod_sandbox(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>>;
    /// Every sandbox (to find pods again after a restart).
    fn list_pod_sandboxes(&self) -> BoxFuture<'_, Result<Vec<SandboxInfo>, RuntimeError>>;
    /// Makes sure the node has an image, pulling it as its policy says; runtimes without
    /// images have every image.
    fn pull_image(
        &self,
        _request: image::ImageRequest,
    ) -> BoxFuture<'_, Result<image::ImageReady, RuntimeError>> {
        Box::pin(async { Ok(image::ImageReady::Present) })
    }
    /// Creates a container in a sandbox.
    fn create_container(
        &self,
        sandbox: &str,
        config: ContainerConfig,
    ) -> BoxFuture<'_, Result<String, RuntimeError>>;
    /// Starts it.
    fn start_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>>;
    /// Stops it, waiting up to `grace` before killing it.
    fn stop_container(&self, id: &str, grace: Duration) -> BoxFuture<'_, Result<(), RuntimeError>>;
    /// Removes it.
    fn remove_container(&self, id: &str) -> BoxFuture<'_, Result<(), RuntimeError>>;
    /// Its status.
    fn container_status(&self, id: &str) -> BoxFuture<'_, Result<ContainerStatus, RuntimeError>>;
    /// Runs a command in it and returns (exit code, output).
    fn exec_sync(
        &self,
        id: &str,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(i32, String), RuntimeError>>;
    /// Starts a command in a running container with its streams (`kubectl exec`).
    fn exec(
        &self,
        _id: &str,
        _request: exec::ExecRequest,
    ) -> BoxFuture<'_, Result<exec::ExecSession, RuntimeError>> {
        let name = self.name();
        Box::pin(async move {
            Err(RuntimeError::Failed(format!(
                "the {name} runtime runs no processes to exec in"
            )))
        })
    }
    /// Joins a running container's own streams (`kubectl attach`). A runtime that keeps
    /// the container's output in a CRI log file serves its output from there as it is
    /// written (stdin cannot be given: such containers are started without one).
    fn attach(
        &self,
        id: &str,
        request: exec::ExecRequest,
    ) -> BoxFuture<'_, Result<exec::ExecSession, RuntimeError>> {
        let id = id.to_owned();
        Box::pin(async move {
            if request.stdin {
                return Err(RuntimeError::Failed(format!(
                    "the {} runtime starts containers without stdin: attach shows their output only",
                    self.name()
                )));
            }
            let status = self.container_status(&id).await?;
            if !matches!(status.state, ContainerState::Running { .. }) {
                return Err(RuntimeError::Failed(format!(
                    "cannot attach to container {}: it is not running",
                    status.name
                )));
            }
            let log = status.log_path.ok_or_else(|| {
                RuntimeError::Failed(format!("the {} runtime keeps no output", self.name()))
            })?;
            Ok(attach::from_log(log, self.changed(&id), request.tty).await)
        })
    }
    /// Finds again what an earlier run of this node left (its sandboxes and containers,
    /// those still running adopted), before any pod is started; how many containers run on.
    fn recover(&self) -> BoxFuture<'_, usize> {
        Box::pin(async { 0 })
    }
    /// What the runtime still has of pod `pod_uid` from before the node agent restarted
    /// (`None`: nothing; the pod starts afresh).
    fn adopt(&self, _pod_uid: &str) -> Option<Adopted> {
        None
    }
    /// The id of the container `container` of pod `namespace/pod` that runs now (or ran
    /// last), if this runtime has it.
    fn find_container(&self, _namespace: &str, _pod: &str, _container: &str) -> Option<String> {
        None
    }
    /// Where the ports of pod `namespace/pod` are reached (port-forward); an error when this
    /// runtime does not run it or runs nothing that listens.
    fn pod_ports(
        &self,
        namespace: &str,
        pod: &str,
    ) -> BoxFuture<'_, Result<PodPorts, RuntimeError>> {
        let (name, what) = (self.name(), format!("{namespace}/{pod}"));
        Box::pin(async move {
            Err(RuntimeError::NotFound(format!(
                "pod {what} (the {name} runtime has no ports to forward to)"
            )))
        })
    }
    /// A container's readiness when the runtime itself knows it (a hollow node does), with
    /// the time it becomes ready; `None` leaves readiness to the pod's probes.
    fn readiness(&self, _id: &str) -> Option<(bool, Option<Instant>)> {
        None
    }
    /// Resolves once a container the caller last saw running has ended (at once if it has
    /// already); a runtime that plans its changes (`changes_at`) never needs it.
    fn changed(&self, _id: &str) -> BoxFuture<'static, ()> {
        Box::pin(std::future::pending())
    }
    /// Whether a running container writes the log file at `path` (a followed log ends when
    /// this turns false).
    fn writes_log(&self, _path: &std::path::Path) -> bool {
        false
    }
    /// Ends what the runtime runs when the node agent shuts down (host processes go with
    /// it); a runtime whose containers outlive the agent does nothing.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
