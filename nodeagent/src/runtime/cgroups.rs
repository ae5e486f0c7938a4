//! Resource limits of the `process` runtime's containers, through cgroups: as root, a container
//! with `resources.limits` gets a cgroup of its own (`ferry/<container id>` under the memory and
//! cpu hierarchies: cgroup v2 where the host has it, else v1), with `memory.max` /
//! `memory.limit_in_bytes` and a CFS quota of `limits.cpu` per 100 ms period. The container's
//! command joins its cgroups before it is exec'd (a `sh` step writing its own pid to
//! `cgroup.procs`), so nothing runs outside them. A container killed by the kernel's OOM killer
//! inside its cgroup is reported `OOMKilled`.

use std::path::{Path, PathBuf};

use super::RuntimeError;

/// A container's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// `limits.memory`, in bytes.
    pub memory_bytes: Option<u64>,
    /// `limits.cpu`, in millicores.
    pub cpu_millis: Option<u64>,
}

impl Limits {
    /// Whether there is anything to limit.
    pub fn is_empty(&self) -> bool {
        self.memory_bytes.is_none() && self.cpu_millis.is_none()
    }
}

/// The CFS period quotas are given against (100 ms, as the kubelet).
const PERIOD_US: u64 = 100_000;

/// Where limits can be set on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// cgroup v2, mounted at this root.
    V2(PathBuf),
    /// cgroup v1: the memory hierarchy, and the cpu one when mounted.
    V1 {
        /// `/sys/fs/cgroup/memory`.
        memory: PathBuf,
        /// `/sys/fs/cgroup/cpu`.
        cpu: Option<PathBuf>,
    },
    /// Not root, or no usable hierarchy: limits are not enforced.
    Unavailable,
}

fn write(path: &Path, value: &str) -> Result<(), RuntimeError> {
    std::fs::write(path, value)
        .map_err(|e| RuntimeError::Failed(format!("writing {value:?} to {}: {e}", path.display())))
}

fn make(dir: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| RuntimeError::Failed(format!("creating cgroup {}: {e}", dir.display())))
}

impl Hierarchy {
    /// What this host offers (as root).
    pub fn detect() -> Hierarchy {
        if !rustix::process::geteuid().is_root() {
            return Hierarchy::Unavailable;
        }
        let root = Path::new("/sys/fs/cgroup");
        let controllers =
            std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Hierarchy::V2(root.to_owned());
        }
        let memory = root.join("memory");
        if memory.join("memory.limit_in_bytes").exists() {
            let cpu = root.join("cpu");
            return Hierarchy::V1 {
                memory,
                cpu: cpu.join("cpu.cfs_quota_us").exists().then_some(cpu),
            };
        }
        Hierarchy::Unavailable
    }

    /// The cgroups of container `id` with `limits` set: the directories its process joins.
    pub fn create(&self, id: &str, limits: &Limits) -> Result<Vec<PathBuf>, RuntimeError> {
        if limits.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Hierarchy::Unavailable => Ok(Vec::new()),
            Hierarchy::V2(root) => {
                let parent = root.join("ferry");
                make(&parent)?;
                // The controllers must be enabled down to the container's cgroup.
                for dir in [root.as_path(), parent.as_path()] {
                    write(&dir.join("cgroup.subtree_control"), "+memory +cpu")?;
                }
                let dir = parent.join(id);
                make(&dir)?;
                if let Some(bytes) = limits.memory_bytes {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                }
                if let Some(millis) = limits.cpu_millis {
                    let quota = (millis * PERIOD_US / 1000).max(1000);
                    write(&dir.join("cpu.max"), &format!("{quota} {PERIOD_US}"))?;
                }
                Ok(vec![dir])
            }
            Hierarchy::V1 { memory, cpu } => {
                let mut dirs = Vec::new();
                if let Some(bytes) = limits.memory_bytes {
                    let dir = memory.join("ferry").join(id);
                    make(&dir)?;
                    write(&dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
                    dirs.push(dir);
                }
                if let (Some(millis), Some(cpu)) = (limits.cpu_millis, cpu) {
                    let dir = cpu.join("ferry").join(id);
                    make(&dir)?;
                    write(&dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
                    let quota = (millis * PERIOD_US / 1000).max(1000);
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    dirs.push(dir);
                }
                Ok(dirs)
            }
        }
    }

    /// Whether the OOM killer killed something in container `id`'s memory cgroup.
    pub fn oom_killed(&self, id: &str) -> bool {
        let (file, dir) = match self {
            Hierarchy::V2(root) => ("memory.events", root.join("ferry").join(id)),
            Hierarchy::V1 { memory, .. } => ("memory.oom_control", memory.join("ferry").join(id)),
            Hierarchy::Unavailable => return false,
        };
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.strip_prefix("oom_kill "))
            .any(|n| n.trim().parse::<u64>().is_ok_and(|n| n > 0))
    }

    /// Where container `id`'s cgroups are, whether or not they exist.
    fn places(&self, id: &str) -> Vec<PathBuf> {
        match self {
            Hierarchy::V2(root) => vec![root.join("ferry").join(id)],
            Hierarchy::V1 { memory, cpu } => {
                let mut dirs = vec![memory.join("ferry").join(id)];
                dirs.extend(cpu.as_ref().map(|c| c.join("ferry").join(id)));
                dirs
            }
            Hierarchy::Unavailable => Vec::new(),
        }
    }

    /// The cgroups container `id` has now (an exec in it joins them).
    pub fn existing(&self, id: &str) -> Vec<PathBuf> {
        self.places(id).into_iter().filter(|d| d.is_dir()).collect()
    }

    /// Removes container `id`'s cgroups (its processes have ended).
    pub fn remove(&self, id: &str) {
        for dir in self.places(id) {
            if let Err(e) = std::fs::remove_dir(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(cgroup = %dir.display(), error = %e, "a container's cgroup could not be removed");
            }
        }
    }
}

impl Hierarchy {
    /// Removes the `ferry` parent cgroups when no container is left in them (another node
    /// of this machine may still use them: then they stay).
    pub fn close(&self) {
        let parents = match self {
            Hierarchy::V2(root) => vec![root.join("ferry")],
            Hierarchy::V1 { memory, cpu } => {
                let mut dirs = vec![memory.join("ferry")];
                dirs.extend(cpu.as_ref().map(|c| c.join("ferry")));
                dirs
            }
            Hierarchy::Unavailable => Vec::new(),
        };
        for dir in parents {
            let busy = std::fs::read_dir(&dir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_type().is_ok_and(|t| t.is_dir()));
            if !busy
                && dir.exists()
                && let Err(e) = std::fs::remove_dir(&dir)
            {
                tracing::debug!(cgroup = %dir.display(), error = %e, "the ferry cgroup stays");
            }
        }
    }
}

/// The program and arguments that put the process into `dirs` before running `command`.
pub fn wrap(dirs: &[PathBuf], command: &[String]) -> Vec<String> {
    if dirs.is_empty() {
        return command.to_vec();
    }
    let mut steps: Vec<String> = dirs
        .iter()
        .map(|d| {
            format!(
                "echo $$ > '{}'",
                d.join("cgroup.procs")
                    .display()
                    .to_string()
                    .replace('\'', r"'\''")
            )
        })
        .collect();
    steps.push("exec \"$@\"".into());
    let mut out = vec![
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        steps.join(" && "),
        "sh".to_owned(),
    ];
    out.extend(command.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_joins_its_cgroups_then_execs() {
        let cmd = vec!["sleep".to_owned(), "1".to_owned()];
        assert_eq!(wrap(&[], &cmd), cmd);
        let out = wrap(&[PathBuf::from("/sys/fs/cgroup/memory/ferry/p-1")], &cmd);
        assert_eq!(
            out,
            [
                "/bin/sh",
                "-c",
                "echo $$ > '/sys/fs/cgroup/memory/ferry/p-1/cgroup.procs' && exec \"$@\"",
                "sh",
                "sleep",
                "1"
            ]
        );
    }

    #[test]
    fn limits_on_a_fake_v1_hierarchy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (memory, cpu) = (dir.path().join("memory"), dir.path().join("cpu"));
        let h = Hierarchy::V1 {
            memory: memory.clone(),
            cpu: Some(cpu.clone()),
        };
        let limits = Limits {
            memory_bytes: Some(64 << 20),
            cpu_millis: Some(250),
        };
        let dirs = h.create("c1", &limits).expect("created");
        assert_eq!(dirs.len(), 2);
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("read");
        assert_eq!(
            read(memory.join("ferry/c1/memory.limit_in_bytes")),
            "67108864"
        );
        assert_eq!(read(cpu.join("ferry/c1/cpu.cfs_quota_us")), "25000");
        assert!(!h.oom_killed("c1"));
        std::fs::write(
            memory.join("ferry/c1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
        )
        .expect("write");
        assert!(h.oom_killed("c1"));
        assert!(h.create("c2", &Limits::default()).expect("none").is_empty());
    }
}
