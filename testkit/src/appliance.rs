//! `ferry up` on an empty directory source, as the end-to-end suites start it: the process,
//! its data directory, a kubectl pointed at it, and `ferry node` processes joining it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ferry::{Background, FerryProcess, Kubectl};

/// A running appliance; everything is stopped and removed when dropped.
pub struct Appliance {
    /// kubectl with a kubeconfig of its own.
    pub kubectl: Kubectl,
    /// The `ferry up` process.
    pub server: FerryProcess,
    /// Its data directory, source and logs.
    pub dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Appliance {
    /// `ferry up` (the binary at `ferry`) on an empty directory source with `extra` flags;
    /// `None` where kubectl is missing outside CI (see [`crate::tools`]).
    pub fn up(ferry: &Path, extra: &[&str]) -> Option<Appliance> {
        let kubectl = crate::tools::kubectl()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("manifests");
        std::fs::create_dir_all(&source).expect("source dir");
        let mut args: Vec<String> = vec![
            "up".into(),
            "--source".into(),
            source.display().to_string(),
            "--allow-empty".into(),
            "--data-dir".into(),
            dir.path().join("data").display().to_string(),
        ];
        // Hollow nodes unless the test asks for a runtime (`ferry up`'s own default runs real
        // processes).
        if !extra.contains(&"--runtime") {
            args.extend(["--runtime".to_owned(), "sim".to_owned()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let server = FerryProcess::start(ferry, &args);
        let kubectl = Kubectl::new(&kubectl, ferry, &server.url, dir.path());
        Some(Appliance {
            kubectl,
            server,
            dir,
            binary: ferry.to_owned(),
        })
    }

    /// `ferry up` with `count` hollow nodes (`sim`, or `sim-0..` for more than one), returned once
    /// they are all Ready.
    pub fn with_hollow_nodes(ferry: &Path, count: usize) -> Option<Appliance> {
        let n = count.to_string();
        let a = Appliance::up(ferry, &["--nodes", &n, "--node-name", "sim"])?;
        // One node is named `sim`; more are `sim-0`, `sim-1`, ...
        let nodes: Vec<String> = match count {
            1 => vec!["node/sim".to_owned()],
            _ => (0..count).map(|i| format!("node/sim-{i}")).collect(),
        };
        // `kubectl wait` fails at once on a node not registered yet: first wait for them all.
        crate::ferry::wait_for(
            std::time::Duration::from_secs(60),
            "the hollow nodes registered",
            || {
                let out = a.kubectl.run(&["get", "nodes", "-o", "name"]);
                let listed = String::from_utf8_lossy(&out.stdout).into_owned();
                nodes
                    .iter()
                    .all(|n| listed.lines().any(|l| l.trim() == n))
                    .then_some(())
            },
        );
        let mut args = vec!["wait", "--for=condition=Ready", "--timeout=60s"];
        args.extend(nodes.iter().map(String::as_str));
        a.kubectl.ok(&args);
        Some(a)
    }

    /// A `ferry node` process (with `args`) against this appliance, logging into its
    /// directory.
    pub fn node(&self, args: &[&str]) -> Background {
        let log = self
            .dir
            .path()
            .join(format!("node-{}.log", args.join("_").replace('/', "_")));
        let mut all = vec!["node", "--server", &self.server.url];
        all.extend_from_slice(args);
        Background::start(&self.binary, &all, &log)
    }

    /// Waits (60 s at most) for nodes that a `ferry node` process just started is registering:
    /// until each exists, then until each is Ready. (`kubectl wait` on a node not yet
    /// registered fails at once with NotFound.)
    pub fn wait_nodes_ready(&self, names: &[&str]) {
        for name in names {
            crate::ferry::wait_for(
                Duration::from_secs(60),
                &format!("node {name} registered"),
                || {
                    self.kubectl
                        .run(&["get", "node", name, "-o", "name"])
                        .status
                        .success()
                        .then_some(())
                },
            );
        }
        let mut args = vec!["wait", "--for=condition=Ready"];
        let nodes: Vec<String> = names.iter().map(|n| format!("node/{n}")).collect();
        args.extend(nodes.iter().map(String::as_str));
        args.push("--timeout=60s");
        self.kubectl.ok(&args);
    }

    /// The node a pod is bound to.
    pub fn node_of(&self, pod: &str) -> String {
        self.kubectl
            .ok(&["get", "pod", pod, "-o", "jsonpath={.spec.nodeName}"])
    }

    /// Waits (60 s at most) for a pod to be Ready.
    pub fn wait_ready(&self, pod: &str) {
        self.kubectl.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "--timeout=60s",
        ]);
    }
}
