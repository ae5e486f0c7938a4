//! How the end of a container's process is seen and recorded: this agent's child is waited
//! for; a process adopted after a restart is looked at until it is gone. Meanwhile its
//! output is copied from the keeper's pipes into its CRI log file; at the end the keeper's
//! exit code (or the wait status, or a kill) becomes the container's end.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::super::crilog;
use super::keeper::{self, Pipes};
use super::{ProcessRuntime, record};

/// How the end of a container's process is seen.
pub(super) enum Waiter {
    /// It is this agent's child.
    Child(tokio::process::Child),
    /// It was adopted (not this agent's child): looked at until it is gone.
    Adopted {
        /// Its pid.
        pid: u32,
        /// Its start time.
        ticks: u64,
    },
}

/// A container's stdout and stderr pipes, open for reading.
pub(super) type Readers = (
    tokio::net::unix::pipe::Receiver,
    tokio::net::unix::pipe::Receiver,
);

/// How often an adopted container's process is looked at.
const ADOPTED_POLL: Duration = Duration::from_millis(250);

impl Waiter {
    /// Waits for the end; the wait status's code when it is known.
    async fn wait(self) -> Option<i32> {
        match self {
            Waiter::Child(mut child) => match child.wait().await {
                Ok(status) => {
                    use std::os::unix::process::ExitStatusExt;
                    status.code().or_else(|| status.signal().map(|s| 128 + s))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for a container failed");
                    None
                }
            },
            Waiter::Adopted { pid, ticks } => {
                while record::start_ticks(pid) == Some(ticks) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                None
            }
        }
    }
}

impl ProcessRuntime {
    /// Follows a running container: copies its pipes into its log, and when its process
    /// ends, reports the end (after the last of its output is in the log).
    ///
    /// The pipes are opened by the caller before the process can end: a pipe's content is
    /// lost when its last holder closes it.
    pub(super) fn follow(
        &self,
        id: String,
        waiter: Waiter,
        pipes: Pipes,
        readers: std::io::Result<Readers>,
        log: PathBuf,
    ) {
        let runtime = self.clone();
        tokio::spawn(async move {
            let (exited_tx, exited) = watch::channel(false);
            let mut copies = Vec::new();
            match (readers, crilog::LogFile::open(&log, runtime.rotation).await) {
                (Ok((out, err)), Ok(file)) => {
                    let file = Arc::new(tokio::sync::Mutex::new(file));
                    for (stream, from) in [("stdout", out), ("stderr", err)] {
                        let (file, exited) = (file.clone(), exited.clone());
                        copies.push(tokio::spawn(async move {
                            keeper::copy(stream, from, &file, exited).await
                        }));
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(container = %id, error = %e, "a container's output cannot be logged");
                }
            }
            let status = waiter.wait().await;
            exited_tx.send_replace(true);
            for copy in copies {
                match copy.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(container = %id, error = %e, "a container's log could not be written")
                    }
                    Err(e) => tracing::warn!(container = %id, error = %e, "a log copier failed"),
                }
            }
            // The keeper's word first; a keeper killed itself (SIGKILL to the group) writes
            // none: then the wait status, or, for an adopted one, a kill.
            let code = pipes.exit_code().or(status).unwrap_or(137);
            let reason = match code {
                0 => "Completed",
                137 if runtime.cgroups.oom_killed(&id) => "OOMKilled",
                _ => "Error",
            };
            runtime.ended(&id, code, reason);
            runtime.cgroups.remove(&id);
        });
    }
}
