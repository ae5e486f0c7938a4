//! A container's keeper, so that its processes outlive the node agent (a kubelet restarted,
//! even with SIGKILL, leaves its pods running, as containerd's shims do): the container's
//! command runs as the child of a small `sh` that
//!
//! - writes the command's stdout and stderr into two named pipes beside the log file
//!   (`<n>.stdout`, `<n>.stderr`), which it also holds open itself, so that a write never fails
//!   while no agent reads them (it waits once the pipe is full, as a stalled logger makes it);
//! - writes the command's exit code (128 + the signal when one ended it) to `<n>.exit`;
//! - ignores the stop signals the container's process group gets only until its command has
//!   ended (a trap, not an ignore: the command's own handling is the default one).
//!
//! The node agent reads the pipes into the CRI log file ([`copy`]); a new agent opens them
//! again and goes on where the last one stopped.

use std::io;
use std::path::{Path, PathBuf};

use tokio::net::unix::pipe;
use tokio::sync::{Mutex, watch};

use super::super::crilog;

/// The keeper's script: `$1` stdout pipe, `$2` stderr pipe, `$3` exit file, then the command.
const SCRIPT: &str = r#"out=$1 err=$2 code_file=$3; shift 3
trap : TERM INT HUP
exec 3<>"$out" 4<>"$err"
"$@" >"$out" 2>"$err" 3<&- 4<&-
code=$?
echo "$code" > "$code_file"
exit "$code"
"#;

/// The files a keeper shares with the agent, beside the container's log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pipes {
    /// The stdout pipe.
    pub stdout: PathBuf,
    /// The stderr pipe.
    pub stderr: PathBuf,
    /// Where the exit code is written.
    pub exit: PathBuf,
}

impl Pipes {
    /// The keeper files of the log file `log` (`<n>.log` → `<n>.stdout`, ...).
    pub fn beside(log: &Path) -> Pipes {
        Pipes {
            stdout: log.with_extension("stdout"),
            stderr: log.with_extension("stderr"),
            exit: log.with_extension("exit"),
        }
    }

    /// Makes the pipes afresh, and no exit file.
    pub fn make(&self) -> io::Result<()> {
        self.remove()?;
        for path in [&self.stdout, &self.stderr] {
            rustix::fs::mknodat(
                rustix::fs::CWD,
                path,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .map_err(io::Error::from)?;
        }
        Ok(())
    }

    /// Removes the pipes and the exit file.
    pub fn remove(&self) -> io::Result<()> {
        for path in [&self.stdout, &self.stderr, &self.exit] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The exit code the keeper wrote, once it has.
    pub fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(&self.exit)
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Opens both pipes for reading (read-write: opening never waits for the keeper, and a
    /// pipe never reads as ended while the keeper is away).
    pub fn open(&self) -> io::Result<(pipe::Receiver, pipe::Receiver)> {
        let open = |path: &Path| {
            pipe::OpenOptions::new()
                .read_write(true)
                .open_receiver(path)
        };
        Ok((open(&self.stdout)?, open(&self.stderr)?))
    }
}

/// The shell, by absolute path (a container's own `PATH` must not decide which runs).
fn shell() -> &'static str {
    ["/bin/sh", "/usr/bin/sh"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("sh")
}

/// The program and arguments that run `command` under a keeper writing to `pipes`.
pub fn wrap(pipes: &Pipes, command: &[String]) -> Vec<String> {
    let mut out = vec![
        shell().to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "keeper".to_owned(),
        pipes.stdout.display().to_string(),
        pipes.stderr.display().to_string(),
        pipes.exit.display().to_string(),
    ];
    out.extend(command.iter().cloned());
    out
}

/// Copies what `from` (one of the pipes) carries into the log file `file` as CRI records of
/// `stream`, until `ended` turns true; then what is left in the pipe, and the last unfinished
/// line as a partial record.
pub async fn copy(
    stream: &'static str,
    from: pipe::Receiver,
    file: &Mutex<crilog::LogFile>,
    mut ended: watch::Receiver<bool>,
) -> io::Result<()> {
    let mut lines = crilog::Lines::new(stream);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            ready = from.readable() => {
                ready?;
                match from.try_read(&mut buf) {
                    Ok(n) => write(file, &lines.push(&buf[..n])).await?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            reported = async { ended.wait_for(|e| *e).await.is_ok() } => {
                if !reported {
                    tracing::debug!(stream, "the container's end was not reported; draining its pipe");
                }
                break;
            }
        }
    }
    // Every writer is gone: what they wrote is in the pipe.
    loop {
        match from.try_read(&mut buf) {
            Ok(0) => break,
            Ok(n) => write(file, &lines.push(&buf[..n])).await?,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    write(file, &lines.finish()).await
}

async fn write(file: &Mutex<crilog::LogFile>, bytes: &[u8]) -> io::Result<()> {
    file.lock().await.write(bytes).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_command_s_output_and_exit_code_reach_the_agent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        let pipes = Pipes::beside(&log);
        pipes.make().expect("pipes");
        let (out, err) = pipes.open().expect("opened");
        let command = wrap(
            &pipes,
            &[
                "sh".into(),
                "-c".into(),
                "echo one; echo two >&2; printf tail; exit 7".into(),
            ],
        );
        let file = Mutex::new(
            crilog::LogFile::open(&log, crilog::Rotation::default())
                .await
                .expect("log"),
        );
        let (ended_tx, ended) = watch::channel(false);
        let mut child = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .spawn()
            .expect("keeper");
        let copies = async {
            tokio::try_join!(
                copy("stdout", out, &file, ended.clone()),
                copy("stderr", err, &file, ended.clone())
            )
        };
        let wait = async {
            let status = child.wait().await.expect("waited");
            ended_tx.send_replace(true);
            status
        };
        let (status, copied) = tokio::join!(wait, copies);
        copied.expect("copied");
        assert_eq!(status.code(), Some(7));
        assert_eq!(pipes.exit_code(), Some(7));
        let text = std::fs::read_to_string(&log).expect("log");
        let records: Vec<_> = text
            .lines()
            .filter_map(crilog::parse)
            .map(|(_, stream, complete, text)| format!("{stream} {complete} {text}"))
            .collect();
        assert!(
            records.contains(&"stdout true one".to_owned()),
            "{records:?}"
        );
        assert!(
            records.contains(&"stderr true two".to_owned()),
            "{records:?}"
        );
        assert!(
            records.contains(&"stdout false tail".to_owned()),
            "{records:?}"
        );
    }
}
