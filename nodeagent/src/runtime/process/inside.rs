//! Commands run inside a running container, for probes and hooks (`exec_sync`) and for
//! `kubectl exec` (streamed): as root, in the container's own mount and network namespaces
//! (entered with util-linux `nsenter`, so they see its volumes, `/etc/hosts` and IP) with its
//! working directory looked up there; without root, in the pod's network and the container's
//! directory. Either way with the container's environment, and in its cgroups (it counts
//! against the container's limits, as a runc exec does).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use super::super::RuntimeError;
use super::super::network::wrap;
use super::ProcessRuntime;

/// How a command is run inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Inside {
    /// The program and arguments.
    pub command: Vec<String>,
    /// Where it starts.
    pub cwd: PathBuf,
    /// Its environment.
    pub env: Vec<(String, String)>,
}

impl ProcessRuntime {
    /// How `command` runs inside container `id` (which must be running).
    pub(super) fn inside(&self, id: &str, command: &[String]) -> Result<Inside, RuntimeError> {
        if command.is_empty() {
            return Err(RuntimeError::Failed("exec of an empty command".into()));
        }
        let (env, pid, working_dir, sandbox) = self.with(|inner| {
            let proc = inner
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(format!("container {id}")))?;
            let sandbox = inner.sandboxes.get(&proc.sandbox).cloned();
            Ok::<_, RuntimeError>((
                proc.config.env.clone(),
                proc.pid,
                proc.config.working_dir.clone(),
                sandbox,
            ))
        })??;
        let Some(pid) = pid else {
            return Err(RuntimeError::Failed(format!(
                "container {id} is not running"
            )));
        };
        let home = sandbox
            .as_ref()
            .map_or_else(|| self.root.clone(), |s| s.dir.clone());
        let (command, cwd) = if self.can_mount {
            let wd = working_dir.unwrap_or_else(|| home.display().to_string());
            let mut line = vec![
                "nsenter".to_owned(),
                format!("--target={pid}"),
                "--mount".to_owned(),
                "--net".to_owned(),
                format!("--wd={wd}"),
                "--".to_owned(),
            ];
            line.extend(command.iter().cloned());
            (line, PathBuf::from("/"))
        } else {
            let cwd = working_dir
                .map(PathBuf::from)
                .filter(|d| d.is_dir())
                .unwrap_or(home);
            let line = match &sandbox {
                Some(s) => wrap(&s.net, command),
                None => command.to_vec(),
            };
            (line, cwd)
        };
        Ok(Inside {
            command: super::super::cgroups::wrap(&self.cgroups.existing(id), &command),
            cwd,
            env,
        })
    }

    /// Runs `command` inside container `id` to its end (at most `timeout`); its exit code and
    /// its output (stdout, then stderr).
    pub(super) async fn run_inside(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<(i32, String), RuntimeError> {
        let place = self.inside(id, command)?;
        let Some((program, args)) = place.command.split_first() else {
            return Err(RuntimeError::Failed("exec of an empty command".into()));
        };
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(place.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&place.cwd)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(timeout, cmd.output())
            .await
            .map_err(|_| RuntimeError::Failed(format!("command timed out after {timeout:?}")))?
            .map_err(|e| RuntimeError::Failed(format!("exec {program:?}: {e}")))?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok((output.status.code().unwrap_or(128), text))
    }
}
