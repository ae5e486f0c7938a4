//! Pod networks for the `process` runtime. As root, with the standard CNI plugins installed,
//! each pod gets a network namespace of its own (named under `/run/netns` as `ip netns add`
//! names it, made by [`super::netns`]), attached by the CNI `bridge` plugin (with `host-local`
//! addresses from the node's pod CIDR) to a bridge of the node whose address is the pods'
//! gateway, so the host reaches every pod at its IP; the pod's processes enter it as they
//! start ([`super::entry`]). Without root or plugins, pods share the host's network and their
//! IP is the node's address.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::RuntimeError;

/// Where Debian's containernetworking-plugins are.
pub const CNI_PLUGINS: &str = "/usr/lib/cni";

/// A pod's place on the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNet {
    /// Its IP.
    pub ip: String,
    /// Its network namespace (a name under `/run/netns`), when it has its own.
    pub netns: Option<String>,
}

/// Gives pods their network.
pub trait PodNetwork: Send + Sync + std::fmt::Debug + 'static {
    /// Gives the pod `uid` its network.
    fn attach(&self, uid: &str) -> BoxFuture<'_, Result<PodNet, RuntimeError>>;
    /// Takes it away (idempotent).
    fn detach(&self, uid: &str) -> BoxFuture<'_, Result<(), RuntimeError>>;
    /// Removes what the network left on the host once no pod uses it.
    fn close(&self) -> BoxFuture<'_, ()> {
        async {}.boxed()
    }
    /// Removes what an earlier run of this node left for pods other than `keep` (their uids:
    /// the pods it found again).
    fn sweep(&self, _keep: &std::collections::HashSet<String>) {}
}

/// iproute2's `ip`, by absolute path (a container's own `PATH` must not decide which runs).
pub fn ip_program() -> &'static str {
    ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("ip")
}

/// Where iproute2 keeps the named network namespace `name`.
pub fn netns_path(name: &str) -> std::path::PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// iproute2's directory of named network namespaces.
const NETNS_DIR: &str = "/run/netns";

/// The program and arguments that run `command` in `net`.
pub fn wrap(net: &PodNet, command: &[String]) -> Vec<String> {
    match &net.netns {
        Some(ns) => [ip_program(), "netns", "exec", ns.as_str()]
            .into_iter()
            .map(str::to_owned)
            .chain(command.iter().cloned())
            .collect(),
        None => command.to_vec(),
    }
}

/// Pods in the host's network.
#[derive(Debug, Clone)]
pub struct HostNetwork {
    address: String,
}

impl HostNetwork {
    /// Pods answer at the node's `address`.
    pub fn new(address: &str) -> HostNetwork {
        HostNetwork {
            address: address.to_owned(),
        }
    }
}

impl PodNetwork for HostNetwork {
    fn attach(&self, _uid: &str) -> BoxFuture<'_, Result<PodNet, RuntimeError>> {
        let net = PodNet {
            ip: self.address.clone(),
            netns: None,
        };
        async move { Ok(net) }.boxed()
    }

    fn detach(&self, _uid: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        async { Ok(()) }.boxed()
    }
}

/// Pods in network namespaces of their own on a bridge, through CNI.
#[derive(Debug, Clone)]
pub struct CniBridge {
    bridge: String,
    subnet: String,
    plugins: PathBuf,
    data_dir: PathBuf,
}

/// A bridge name for a subnet, unique per subnet and within Linux's 15 characters.
fn bridge_name(subnet: &str) -> String {
    let hash = subnet.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("ferry{:08x}", hash as u32)
}

/// Runs a command, failing with its stderr.
async fn run(program: &str, args: &[&str]) -> Result<(), RuntimeError> {
    let program = if program == "ip" {
        ip_program()
    } else {
        program
    };
    let out = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| RuntimeError::Failed(format!("{program} {}: {e}", args.join(" "))))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RuntimeError::Failed(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Removes the pod network namespace `name` (off the runtime's threads).
async fn remove_netns(name: &str) -> Result<(), RuntimeError> {
    let path = netns_path(name);
    let name = name.to_owned();
    super::blocking(move || super::netns::remove(Path::new(NETNS_DIR), &name))
        .await
        .map_err(|e| {
            RuntimeError::Failed(format!(
                "removing the network namespace {}: {e}",
                path.display()
            ))
        })
}

impl CniBridge {
    /// A bridge network for the pods of `subnet` (the node's pod CIDR), keeping CNI's state in
    /// `data_dir`. `None` when this process cannot make network namespaces (not root) or the
    /// plugins are missing; the reason is returned for a warning.
    pub fn new(subnet: &str, data_dir: &Path) -> Result<CniBridge, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("not running as root".into());
        }
        let plugins = PathBuf::from(CNI_PLUGINS);
        for plugin in ["bridge", "host-local"] {
            if !plugins.join(plugin).exists() {
                return Err(format!(
                    "the CNI plugin {} is missing (apt-get install containernetworking-plugins)",
                    plugins.join(plugin).display()
                ));
            }
        }
        let bridge = CniBridge {
            bridge: bridge_name(subnet),
            subnet: subnet.to_owned(),
            plugins,
            data_dir: data_dir.to_owned(),
        };
        Ok(bridge)
    }

    fn netns(&self, uid: &str) -> String {
        format!("{}-{uid}", self.bridge)
    }

    fn config(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": self.bridge,
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.subnet}]],
                "dataDir": self.data_dir.display().to_string(),
            },
        })
    }

    /// Runs the bridge plugin with `command` (ADD or DEL) for the pod `uid`; its answer.
    async fn plugin(&self, command: &str, uid: &str) -> Result<Value, RuntimeError> {
        let netns = format!("/run/netns/{}", self.netns(uid));
        let mut child = tokio::process::Command::new(self.plugins.join("bridge"))
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", uid)
            .env("CNI_NETNS", &netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", &self.plugins)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RuntimeError::Failed(format!("running the CNI bridge plugin: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(self.config().to_string().as_bytes())
                .await
                .map_err(|e| RuntimeError::Failed(format!("writing the CNI config: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| RuntimeError::Failed(format!("the CNI bridge plugin: {e}")))?;
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        if !out.status.success() {
            return Err(RuntimeError::Failed(format!(
                "CNI {command} for pod {uid}: {}",
                answer["msg"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_owned())
            )));
        }
        Ok(answer)
    }
}

impl PodNetwork for CniBridge {
    fn sweep(&self, keep: &std::collections::HashSet<String>) {
        let prefix = format!("{}-", self.bridge);
        let stale: Vec<String> = std::fs::read_dir(NETNS_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.strip_prefix(&prefix)
                    .is_some_and(|uid| !keep.contains(uid))
            })
            .collect();
        for name in &stale {
            let pids = std::process::Command::new(ip_program())
                .args(["netns", "pids", name])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            for pid in pids
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                if let Some(pid) = rustix::process::Pid::from_raw(pid)
                    && let Err(e) =
                        rustix::process::kill_process(pid, rustix::process::Signal::KILL)
                {
                    tracing::warn!(netns = %name, pid = pid.as_raw_nonzero().get(), error = %e, "a stale pod process could not be killed");
                }
            }
            if let Err(e) = super::netns::remove(Path::new(NETNS_DIR), name) {
                tracing::warn!(netns = %name, error = %e, "a stale pod network namespace could not be removed");
            }
        }
        if !stale.is_empty() {
            tracing::warn!(namespaces = stale.len(), bridge = %self.bridge, "removed the pod networks an earlier run of this node left behind");
        }
        // Address reservations (host-local keeps one file per address, naming its pod) of
        // pods not kept are released.
        let reservations = self.data_dir.join(&self.bridge);
        for entry in std::fs::read_dir(&reservations)
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path();
            let is_address = entry
                .file_name()
                .to_string_lossy()
                .parse::<std::net::IpAddr>()
                .is_ok();
            let owner = std::fs::read_to_string(&path).unwrap_or_default();
            let owner = owner.lines().next().unwrap_or_default().trim().to_owned();
            if is_address
                && !keep.contains(&owner)
                && let Err(e) = std::fs::remove_file(&path)
            {
                tracing::warn!(reservation = %path.display(), error = %e, "a stale address reservation could not be removed");
            }
        }
    }

    fn attach(&self, uid: &str) -> BoxFuture<'_, Result<PodNet, RuntimeError>> {
        let uid = uid.to_owned();
        async move {
            let name = self.netns(&uid);
            if !netns_path(&name).exists() {
                let made = name.clone();
                super::blocking(move || super::netns::add(Path::new(NETNS_DIR), &made))
                    .await
                    .map_err(|e| RuntimeError::Failed(e.to_string()))?;
            }
            let answer = match self.plugin("ADD", &uid).await {
                Ok(answer) => answer,
                Err(e) => {
                    if let Err(cleanup) = remove_netns(&name).await {
                        tracing::warn!(netns = %name, error = %cleanup, "a pod network namespace could not be removed");
                    }
                    return Err(e);
                }
            };
            let ip = answer["ips"][0]["address"]
                .as_str()
                .and_then(|a| a.split('/').next())
                .ok_or_else(|| {
                    RuntimeError::Failed(format!("CNI gave pod {uid} no address: {answer}"))
                })?
                .to_owned();
            Ok(PodNet {
                ip,
                netns: Some(name),
            })
        }
        .boxed()
    }

    fn detach(&self, uid: &str) -> BoxFuture<'_, Result<(), RuntimeError>> {
        let uid = uid.to_owned();
        async move {
            let name = self.netns(&uid);
            if !netns_path(&name).exists() {
                return Ok(());
            }
            // The address goes back to host-local even if the namespace is half gone.
            let released = self.plugin("DEL", &uid).await;
            remove_netns(&name).await?;
            released.map(|_| ())
        }
        .boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            let pods = format!("{}-", self.bridge);
            let left = std::fs::read_dir(NETNS_DIR)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&pods));
            if !left
                && Path::new("/sys/class/net").join(&self.bridge).exists()
                && let Err(e) = run("ip", &["link", "del", &self.bridge]).await
            {
                tracing::warn!(bridge = %self.bridge, error = %e, "the pod bridge could not be removed");
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_run_inside_the_pods_namespace() {
        let host = PodNet {
            ip: "127.0.0.1".into(),
            netns: None,
        };
        let own = PodNet {
            ip: "10.128.0.2".into(),
            netns: Some("ferryab-uid".into()),
        };
        let cmd = vec!["sleep".to_owned(), "1".to_owned()];
        assert_eq!(wrap(&host, &cmd), cmd);
        assert_eq!(
            wrap(&own, &cmd),
            [ip_program(), "netns", "exec", "ferryab-uid", "sleep", "1"]
        );
    }

    #[test]
    fn bridge_names_fit_linux_and_differ_by_subnet() {
        let a = bridge_name("10.128.0.0/24");
        let b = bridge_name("10.128.1.0/24");
        assert!(a.len() <= 15 && b.len() <= 15, "{a} {b}");
        assert_ne!(a, b);
    }
}
