//! A containerd of the test's own for the `cri` runtime's suites: started from
//! `ops/cri/containerd.sh` with its config, root, state, socket and CNI files in a temporary
//! directory and a bridge named for the test, with the project's local images
//! (`ops/cri/images.sh`: `ferry.local/busybox:1` and the sandbox image) imported, and, when a
//! test asks, a registry on loopback with basic auth (`ops/cri/registry.sh`). Dropping it
//! stops and removes every sandbox through CRI (which releases their network namespaces),
//! stops containerd and its shims, and removes the bridge and any mount left under its
//! directory.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferry_nodeagent::runtime::cri::client::CriClient;

use crate::ferry::wait_for;

fn ops() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/cri")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The tools the `cri` suites need, all present (else `None`, a failure under CI).
fn tools_present() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&str> = [
        "containerd",
        "runc",
        "ctr",
        "umoci",
        "busybox",
        "docker-registry",
    ]
    .into_iter()
    .filter(|t| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
    .collect();
    let ok = root && missing.is_empty() && Path::new("/usr/lib/cni/bridge").exists();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the cri suites need root, containerd, runc, umoci, busybox-static, docker-registry \
             and the CNI plugins under CI=true (missing: {missing:?}, root: {root})"
        );
        eprintln!("containerd or its tools are missing ({missing:?}, root: {root}); skipping");
    }
    ok
}

/// A running containerd.
pub struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
    bridge: String,
    registry_port: u16,
    registry: Option<Child>,
}

impl Containerd {
    /// Starts one, with the local images imported; `None` where the tools are missing
    /// outside CI.
    pub fn start() -> Option<Containerd> {
        if !tools_present() {
            return None;
        }
        let images = std::env::temp_dir().join("ferry-cri-images");
        let built = Command::new(ops().join("images.sh"))
            .arg(&images)
            .status()
            .expect("images.sh runs");
        assert!(built.success(), "ops/cri/images.sh failed");
        let dir = tempfile::tempdir().expect("tempdir");
        // A bridge name of at most 15 characters, the test's own.
        let bridge = format!("fc{}{}", std::process::id() % 100_000, free_port() % 1000);
        let registry_port = free_port();
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log file");
        let child = Command::new(ops().join("containerd.sh"))
            .arg(dir.path())
            .arg(format!("127.0.0.1:{registry_port}"))
            .env("FERRY_CRI_BRIDGE", &bridge)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("containerd.sh starts");
        let containerd = Containerd {
            dir,
            child,
            bridge,
            registry_port,
            registry: None,
        };
        wait_for(Duration::from_secs(30), "containerd answering", || {
            containerd.ctr(&["version"]).status.success().then_some(())
        });
        for name in ["busybox", "pause"] {
            let out = containerd.ctr(&[
                "images",
                "import",
                "--base-name",
                &format!("ferry.local/{name}"),
                &images.join(format!("{name}.tar")).display().to_string(),
            ]);
            assert!(
                out.status.success(),
                "importing {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(containerd)
    }

    /// Its CRI socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// `ctr -n k8s.io ARGS` against it.
    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .expect("ctr runs")
    }

    /// What containerd logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Starts the loopback registry (user `ferry`, password `password`) and pushes
    /// `ferry.local/busybox:1` to it as `REGISTRY/ferry/busybox:2`; returns the registry's
    /// `host:port`.
    pub fn registry(&mut self, password: &str) -> String {
        let address = format!("127.0.0.1:{}", self.registry_port);
        let log = std::fs::File::create(self.dir.path().join("registry.log")).expect("log file");
        let child = Command::new(ops().join("registry.sh"))
            .arg(self.dir.path().join("registry"))
            .arg(self.registry_port.to_string())
            .arg(password)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("registry.sh starts");
        self.registry = Some(child);
        wait_for(Duration::from_secs(30), "the registry answering", || {
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
                .arg(format!("http://{address}/v2/"))
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout) == "401").then_some(())
        });
        let pushed = format!("{address}/ferry/busybox:2");
        let tagged = self.ctr(&["images", "tag", "ferry.local/busybox:1", &pushed]);
        assert!(
            tagged.status.success(),
            "{}",
            String::from_utf8_lossy(&tagged.stderr)
        );
        let out = self.ctr(&[
            "images",
            "push",
            "--plain-http",
            "-u",
            &format!("ferry:{password}"),
            &pushed,
        ]);
        assert!(
            out.status.success(),
            "push: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The node must pull it, not find it.
        let removed = self.ctr(&["images", "rm", &pushed]);
        assert!(
            removed.status.success(),
            "{}",
            String::from_utf8_lossy(&removed.stderr)
        );
        address
    }

    /// Stops and removes every sandbox through CRI (their networks released).
    fn remove_sandboxes(&self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let client = CriClient::new(&self.socket());
        runtime.block_on(async {
            let sandboxes = match client.list_pod_sandboxes(Default::default()).await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("listing sandboxes to clean up: {e}");
                    return;
                }
            };
            for s in sandboxes {
                if let Err(e) = client.stop_pod_sandbox(&s.id).await {
                    eprintln!("stopping sandbox {}: {e}", s.id);
                }
                if let Err(e) = client.remove_pod_sandbox(&s.id).await {
                    eprintln!("removing sandbox {}: {e}", s.id);
                }
            }
        });
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.remove_sandboxes();
        if let Some(mut registry) = self.registry.take() {
            crate::ferry::sigterm_and_wait(&mut registry, Duration::from_secs(10));
        }
        crate::ferry::sigterm_and_wait(&mut self.child, Duration::from_secs(20));
        if let Err(e) = self.child.kill() {
            eprintln!("stopping containerd: {e}");
        }
        if let Err(e) = self.child.wait() {
            eprintln!("reaping containerd: {e}");
        }
        // Shims of this containerd that outlived it.
        let address = format!("address {}", self.socket().display());
        if let Err(e) = Command::new("pkill").args(["-9", "-f", &address]).status() {
            eprintln!("pkill shims: {e}");
        }
        if let Err(e) = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status()
        {
            eprintln!("removing bridge {}: {e}", self.bridge);
        }
        // Mounts left under the directory (rootfs overlays, shm), deepest first.
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        let mut left: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&root))
            .collect();
        left.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in left {
            if let Err(e) = Command::new("umount").args(["-l", m]).status() {
                eprintln!("umount {m}: {e}");
            }
        }
    }
}
