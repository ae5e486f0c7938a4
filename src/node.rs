//! `ferry node`: node agents against an apiserver (one node, or `--count N` hollow ones).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use ferry_nodeagent::agent::{NodeAgent, NodeHandle};
use ferry_nodeagent::config;
use ferry_nodeagent::runtime::cri::CriRuntime;
use ferry_nodeagent::runtime::crilog::Rotation;
use ferry_nodeagent::runtime::network::CniBridge;
use ferry_nodeagent::runtime::process::ProcessRuntime;
use ferry_nodeagent::runtime::sim::{SimRuntime, SimTimings};
use ferry_schema::quantity::Quantity;

use crate::serve::parse_duration;

/// The runtimes a node can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeKind {
    /// Hollow nodes: no processes (the role of KWOK and kubemark).
    Sim,
    /// Each container a process of this host, started from the pod's command; pods share
    /// the host's network.
    Process,
    /// Containers run by a CRI v1 runtime (containerd, CRI-O) at `--cri-socket`.
    Cri,
}

/// How the nodes of this process look.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeOptions {
    /// The container runtime (default: `process` for `ferry up`, `sim` for `ferry node`).
    #[arg(long, value_enum)]
    pub runtime: Option<RuntimeKind>,
    /// Extra labels: k=v,k2=v2.
    #[arg(long, default_value = "")]
    pub labels: String,
    /// Taints: key=value:Effect,key:Effect.
    #[arg(long, default_value = "")]
    pub taints: String,
    /// Capacity: cpu=4,memory=8Gi,pods=110 (and extended resources, nvidia.com/gpu=2).
    #[arg(long, default_value = "")]
    pub capacity: String,
    /// Hollow containers become Ready this long after they start.
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub sim_start_delay: Duration,
    /// Hollow containers of pods that are not restarted end after this long.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub sim_run_time: Duration,
    /// Where nodes keep their pods' directories and logs, one folder per node (default:
    /// /var/lib/ferry/nodes for `ferry node`, DATA_DIR/nodes for `ferry up`).
    #[arg(long)]
    pub root_dir: Option<std::path::PathBuf>,
    /// The pod CIDR of the node (one node only; default 10.128.N.0/24 for the N-th node of
    /// the process). With `--runtime process` as root, pods get their IPs from it on a bridge.
    #[arg(long)]
    pub pod_cidr: Option<String>,
    /// Where the node endpoint (container logs, for `kubectl logs`) listens, for runtimes that
    /// run real containers (default: 127.0.0.1:10250 for `ferry node`, a free loopback port
    /// for `ferry up`).
    #[arg(long)]
    pub endpoint_listen: Option<std::net::SocketAddr>,
    /// A container log file this large is rotated (the kubelet's containerLogMaxSize).
    #[arg(long, default_value = "10Mi")]
    pub container_log_max_size: String,
    /// Log files kept per container, the current one included (containerLogMaxFiles).
    #[arg(long, default_value_t = 5)]
    pub container_log_max_files: usize,
    /// The CRI runtime's socket (`--runtime cri`).
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    pub cri_socket: std::path::PathBuf,
    /// How often each node renews its Lease (the kubelet's 10 s).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub node_lease_renew_interval: Duration,
}

/// `ferry node`'s arguments.
#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    /// The node's name (with --count: the prefix of NAME-0 .. NAME-N-1).
    #[arg(long)]
    pub name: String,
    /// How many hollow nodes this process runs.
    #[arg(long, default_value_t = 1)]
    pub count: usize,
    #[command(flatten)]
    pub options: NodeOptions,
}

/// Whether `text` is an IPv4 CIDR (`10.200.0.0/24`).
fn valid_cidr(text: &str) -> bool {
    text.split_once('/').is_some_and(|(ip, bits)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok_and(|b| b <= 32)
    })
}

impl NodeOptions {
    /// The node handles for `name` × `count`.
    pub fn handles(
        &self,
        name: &str,
        count: usize,
        default_root: &std::path::Path,
    ) -> anyhow::Result<Vec<NodeHandle>> {
        // Absolute: containers start in directories of their own, where a path relative to
        // this process's directory (`--data-dir data`) would name nothing.
        let root = std::path::absolute(self.root_dir.as_deref().unwrap_or(default_root))
            .context("the node root directory")?;
        let root = root.as_path();
        let kind = self.runtime.unwrap_or(RuntimeKind::Sim);
        let labels = config::parse_labels(&self.labels)?;
        let taints = config::parse_taints(&self.taints)?;
        let capacity = config::parse_capacity(&self.capacity, config::sim_capacity())?;
        let timings = SimTimings {
            start_delay: self.sim_start_delay,
            run_time: self.sim_run_time,
        };
        let rotation = self.log_rotation()?;
        let mut configs = config::nodes(name, count, &labels, &taints, &capacity);
        if let Some(cidr) = &self.pod_cidr {
            anyhow::ensure!(
                configs.len() == 1,
                "--pod-cidr gives one node its CIDR; this process runs {}",
                configs.len()
            );
            anyhow::ensure!(
                valid_cidr(cidr),
                "--pod-cidr: {cidr:?} is not an IPv4 CIDR such as 10.200.0.0/24"
            );
            configs[0].pod_cidr = cidr.clone();
        }
        configs
            .into_iter()
            .map(|config| {
                let volumes = (kind != RuntimeKind::Sim)
                    .then(|| root.join(&config.name).join("volumes"));
                let runtime: Arc<dyn ferry_nodeagent::runtime::Runtime> = match kind {
                    RuntimeKind::Sim => Arc::new(SimRuntime::new(&config.pod_cidr, timings)),
                    RuntimeKind::Process => {
                        let dir = root.join(&config.name);
                        let runtime =
                            ProcessRuntime::new(&dir, &config.address).with_log_rotation(rotation);
                        match CniBridge::new(&config.pod_cidr, &dir.join("cni")) {
                            Ok(bridge) => Arc::new(runtime.with_network(Arc::new(bridge))),
                            Err(why) => {
                                tracing::warn!(node = %config.name, reason = %why, "pods share the host's network: their IP is the node's, and two pods cannot listen on one port");
                                Arc::new(runtime)
                            }
                        }
                    }
                    RuntimeKind::Cri => Arc::new(CriRuntime::new(
                        &self.cri_socket,
                        &config.name,
                        &config.address,
                        &config.pod_cidr,
                        &root.join(&config.name),
                    )
                    .with_log_rotation(rotation)),
                };
                Ok(NodeHandle {
                    config,
                    runtime,
                    volumes,
                })
            })
            .collect()
    }
}

impl NodeOptions {
    /// The container log rotation the flags ask for.
    fn log_rotation(&self) -> anyhow::Result<Rotation> {
        let size = Quantity::parse(&self.container_log_max_size)
            .ok()
            .and_then(|q| u64::try_from(q.value()).ok())
            .filter(|b| *b > 0)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "--container-log-max-size: {:?} is not a size such as 10Mi",
                    self.container_log_max_size
                )
            })?;
        anyhow::ensure!(
            self.container_log_max_files >= 2,
            "--container-log-max-files: {} keeps no rotated file; give at least 2",
            self.container_log_max_files
        );
        Ok(Rotation {
            max_bytes: size,
            max_files: self.container_log_max_files,
        })
    }

    /// The node endpoint's address and the log roots of `handles`, when their runtime runs
    /// real containers (`default` when no address was given).
    pub fn endpoint(
        &self,
        handles: &[NodeHandle],
        default_root: &std::path::Path,
        default: &str,
    ) -> Option<(std::net::SocketAddr, Vec<std::path::PathBuf>)> {
        if self.runtime.unwrap_or(RuntimeKind::Sim) == RuntimeKind::Sim {
            return None;
        }
        // Absolute: containers start in directories of their own, where a path relative to
        // this process's directory (`--data-dir data`) would name nothing.
        let root = std::path::absolute(self.root_dir.as_deref().unwrap_or(default_root)).ok()?;
        let root = root.as_path();
        let addr = self.endpoint_listen.or_else(|| default.parse().ok())?;
        Some((
            addr,
            handles.iter().map(|h| root.join(&h.config.name)).collect(),
        ))
    }
}

/// Runs `ferry node` until SIGINT or SIGTERM.
pub fn run(server: &str, args: NodeArgs) -> anyhow::Result<()> {
    let root = std::path::Path::new("/var/lib/ferry/nodes");
    let handles = args.options.handles(&args.name, args.count, root)?;
    let endpoint = args.options.endpoint(&handles, root, "127.0.0.1:10250");
    let renew = args.options.node_lease_renew_interval;
    crate::remote::run(server, |client, cancel| async move {
        tracing::info!(server, nodes = handles.len(), "ferry node starting");
        let mut agent = NodeAgent::new(client, handles).heartbeat_every(renew);
        if let Some((addr, roots)) = endpoint {
            agent = agent.serve_endpoint(addr, roots);
        }
        agent.run(cancel).await?;
        Ok(())
    })
}
