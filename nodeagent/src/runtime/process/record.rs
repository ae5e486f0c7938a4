//! What the `process` runtime keeps on disk about its sandboxes and containers, so that a node
//! agent started again (after a crash or SIGKILL) finds the pods it was running: a
//! `sandbox.json` in each pod's directory and a `<n>.json` beside each container's log file,
//! written whole (a temporary file renamed over the old one) whenever they change. A record's
//! process is the one it names only while that process's start time (from `/proc`) is the one
//! recorded: a pid reused by another process is not adopted.

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::super::{ContainerConfig, ContainerState};

/// A sandbox as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    /// The sandbox's id.
    pub id: String,
    /// The pod's uid.
    pub pod_uid: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's IP.
    pub ip: String,
    /// Its network namespace, when it has its own.
    pub netns: Option<String>,
}

/// A container as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRecord {
    /// The container's id.
    pub id: String,
    /// Its sandbox's id.
    pub sandbox: String,
    /// What it was made from.
    pub config: ContainerConfig,
    /// Its CRI log file.
    pub log: PathBuf,
    /// Its state when last recorded.
    pub state: ContainerState,
    /// Its keeper's pid, while it runs.
    pub pid: Option<u32>,
    /// That process's start time, in clock ticks since boot (`/proc/<pid>/stat`).
    pub start_ticks: Option<u64>,
}

/// Where a sandbox's record is, in its directory.
pub fn sandbox_path(dir: &Path) -> PathBuf {
    dir.join("sandbox.json")
}

/// Where a container's record is, beside its log file.
pub fn container_path(log: &Path) -> PathBuf {
    log.with_extension("json")
}

/// Writes `value` to `path` whole.
pub fn write<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::warn!(record = %path.display(), error = %e, "an unreadable runtime record is ignored");
            None
        }
    }
}

/// A pod directory's records: its sandbox and every container record under it.
#[derive(Debug, Clone)]
pub struct PodRecords {
    /// The pod's directory.
    pub dir: PathBuf,
    /// Its sandbox.
    pub sandbox: SandboxRecord,
    /// Its containers (every start of each).
    pub containers: Vec<ContainerRecord>,
}

/// Every pod recorded under `pods` (the runtime's `ROOT/pods`).
pub fn load(pods: &Path) -> Vec<PodRecords> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(pods).into_iter().flatten().flatten() {
        let dir = entry.path();
        let Some(sandbox) = read::<SandboxRecord>(&sandbox_path(&dir)) else {
            continue;
        };
        let mut containers = Vec::new();
        for sub in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if !sub.path().is_dir() {
                continue;
            }
            for file in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "json")
                    && let Some(record) = read::<ContainerRecord>(&path)
                {
                    containers.push(record);
                }
            }
        }
        found.push(PodRecords {
            dir,
            sandbox,
            containers,
        });
    }
    found
}

/// When process `pid` started, in clock ticks since boot; `None` when there is no such
/// process, or it has ended and waits to be reaped (a zombie).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the recorded process still runs (the same one, not a reused pid).
pub fn alive(record: &ContainerRecord) -> bool {
    match (record.pid, record.start_ticks) {
        (Some(pid), Some(ticks)) => start_ticks(pid) == Some(ticks),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_time_and_a_dead_one_has_none() {
        let me = std::process::id();
        let ticks = start_ticks(me).expect("this process");
        assert_eq!(start_ticks(me), Some(ticks));
        assert_eq!(start_ticks(u32::MAX), None);
    }

    #[test]
    fn records_are_written_whole_and_found_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pod = dir.path().join("default_p_uid");
        let sandbox = SandboxRecord {
            id: "sandbox-uid".into(),
            pod_uid: "uid".into(),
            namespace: "default".into(),
            name: "p".into(),
            ip: "10.0.0.2".into(),
            netns: None,
        };
        write(&sandbox_path(&pod), &sandbox).expect("sandbox");
        let log = pod.join("c").join("0.log");
        let container = ContainerRecord {
            id: "process-1".into(),
            sandbox: sandbox.id.clone(),
            config: ContainerConfig {
                name: "c".into(),
                image: "busybox".into(),
                command: vec!["sleep".into(), "1".into()],
                image_entrypoint: false,
                stdin: false,
                stdin_once: false,
                tty: false,
                init: false,
                env: vec![],
                working_dir: None,
                mounts: vec![],
                limits: Default::default(),
            },
            log: log.clone(),
            state: ContainerState::Created,
            pid: Some(std::process::id()),
            start_ticks: start_ticks(std::process::id()),
        };
        write(&container_path(&log), &container).expect("container");
        let found = load(dir.path());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].sandbox, sandbox);
        assert_eq!(found[0].containers, vec![container.clone()]);
        assert!(alive(&container));
        let stale = ContainerRecord {
            start_ticks: Some(1),
            ..container
        };
        assert!(!alive(&stale));
    }
}
