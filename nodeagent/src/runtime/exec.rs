//! Streaming exec (CRI's `Exec`, what `kubectl exec` and `kubectl cp` use): a command started
//! in a running container, with its stdin, stdout and stderr as byte streams, or with a
//! terminal (`tty`) whose size the client sets, and its exit code at the end. The runtimes
//! start the process; [`spawn`] gives it pipes or a pseudo-terminal, the terminal made its
//! controlling one by util-linux `setsid --ctty` (no code of ours runs between fork and exec).

use std::path::Path;
use std::process::Stdio;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

use super::RuntimeError;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Whether it gets a terminal (stdout and stderr are then one stream).
    pub tty: bool,
    /// Whether the client sends stdin.
    pub stdin: bool,
}

/// Sets a terminal's size.
pub trait Terminal: Send + Sync {
    /// Sets the size to `width` columns and `height` rows.
    fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError>;
}

/// A reader of one of the command's outputs.
pub type Output = Box<dyn AsyncRead + Send + Unpin>;
/// The command's stdin.
pub type Input = Box<dyn AsyncWrite + Send + Unpin>;

/// A running exec.
pub struct ExecSession {
    /// Its stdin, when asked for.
    pub stdin: Option<Input>,
    /// Its stdout (with a terminal: everything it writes).
    pub stdout: Option<Output>,
    /// Its stderr (none with a terminal).
    pub stderr: Option<Output>,
    /// Its terminal, with a tty.
    pub terminal: Option<Box<dyn Terminal>>,
    /// Its exit code (128 + the signal when a signal ended it).
    pub exit: BoxFuture<'static, Result<i32, RuntimeError>>,
    /// Kills the command (the client went away).
    pub kill: Box<dyn FnOnce() + Send>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession")
            .field("stdin", &self.stdin.is_some())
            .field("tty", &self.terminal.is_some())
            .finish_non_exhaustive()
    }
}

fn failed(what: &str) -> impl FnOnce(std::io::Error) -> RuntimeError + '_ {
    move |e| RuntimeError::Failed(format!("{what}: {e}"))
}

/// The master side of a pseudo-terminal.
struct Pty {
    master: std::os::fd::OwnedFd,
}

impl Terminal for Pty {
    fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        let size = rustix::termios::Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&self.master, size)
            .map_err(|e| RuntimeError::Failed(format!("resizing the terminal: {e}")))
    }
}

/// A new pseudo-terminal: its master and the path of its slave.
fn open_pty() -> Result<(std::os::fd::OwnedFd, std::fs::File), RuntimeError> {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .map_err(|e| RuntimeError::Failed(format!("opening a terminal: {e}")))?;
    rustix::pty::grantpt(&master)
        .and_then(|()| rustix::pty::unlockpt(&master))
        .map_err(|e| RuntimeError::Failed(format!("unlocking a terminal: {e}")))?;
    let name = rustix::pty::ptsname(&master, Vec::new())
        .map_err(|e| RuntimeError::Failed(format!("naming a terminal: {e}")))?;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::OpenOptionsExt;
    let path = std::path::PathBuf::from(std::ffi::OsStr::from_bytes(name.as_bytes()));
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(&path)
        .map_err(failed("opening the terminal's slave"))?;
    Ok((master, slave))
}

/// Starts `command` (already wrapped into the container's namespaces) with `env` in `cwd`.
pub fn spawn(
    command: &[String],
    env: &[(String, String)],
    cwd: &Path,
    request: &ExecRequest,
) -> Result<ExecSession, RuntimeError> {
    let mut argv: Vec<String> = Vec::new();
    if request.tty {
        // A session of its own whose controlling terminal is the one on its stdin.
        argv.extend(["setsid".to_owned(), "--ctty".to_owned()]);
    }
    argv.extend(command.iter().cloned());
    let Some((program, args)) = argv.split_first() else {
        return Err(RuntimeError::Failed("exec of an empty command".into()));
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .kill_on_drop(true);
    let mut terminal: Option<Box<dyn Terminal>> = None;
    let mut master_io: Option<(tokio::fs::File, tokio::fs::File)> = None;
    if request.tty {
        let (master, slave) = open_pty()?;
        let out = slave.try_clone().map_err(failed("sharing the terminal"))?;
        let err = slave.try_clone().map_err(failed("sharing the terminal"))?;
        cmd.stdin(Stdio::from(slave))
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let reader = master.try_clone().map_err(failed("sharing the terminal"))?;
        let writer = master.try_clone().map_err(failed("sharing the terminal"))?;
        master_io = Some((
            tokio::fs::File::from_std(std::fs::File::from(reader)),
            tokio::fs::File::from_std(std::fs::File::from(writer)),
        ));
        let pty = Pty { master };
        pty.resize(80, 24)?;
        terminal = Some(Box::new(pty));
    } else {
        cmd.stdin(if request.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a kill reaches what it starts.
        .process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| RuntimeError::Failed(format!("exec {program:?}: {e}")))?;
    let pid = child.id();
    let (stdin, stdout, stderr): (Option<Input>, Option<Output>, Option<Output>) = match master_io {
        Some((reader, writer)) => (
            request.stdin.then(|| Box::new(writer) as Input),
            Some(Box::new(TerminalReader(reader)) as Output),
            None,
        ),
        None => (
            child.stdin.take().map(|s| Box::new(s) as Input),
            child.stdout.take().map(|s| Box::new(s) as Output),
            child.stderr.take().map(|s| Box::new(s) as Output),
        ),
    };
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let exit = async move {
        use std::os::unix::process::ExitStatusExt;
        let status = tokio::select! {
            status = child.wait() => status,
            _ = kill_rx => {
                if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()).and_then(rustix::process::Pid::from_raw) {
                    // The group it leads (or its session, with a terminal).
                    if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
                        tracing::debug!(error = %e, "the exec's process group was already gone");
                    }
                }
                child.wait().await
            }
        }
        .map_err(failed("waiting for the exec"))?;
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(128))
    }
    .boxed();
    Ok(ExecSession {
        stdin,
        stdout,
        stderr,
        terminal,
        exit,
        kill: Box::new(move || {
            // The session may have ended already: then nobody listens.
            if kill_tx.send(()).is_err() {
                tracing::debug!("the exec had ended before it was killed");
            }
        }),
    })
}

/// A terminal's master as a reader: the end of the terminal (EIO once every slave is closed)
/// reads as the end of the stream.
struct TerminalReader(tokio::fs::File);

impl AsyncRead for TerminalReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.0).poll_read(cx, buf) {
            std::task::Poll::Ready(Err(e))
                if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) =>
            {
                std::task::Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

/// The whole of one of a session's output streams, as text (for tests).
#[cfg(test)]
pub(crate) async fn read_all(output: Option<Output>) -> String {
    use tokio::io::AsyncReadExt;
    let mut text = String::new();
    output
        .expect("the session has this stream")
        .read_to_string(&mut text)
        .await
        .expect("read");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn pipes_carry_stdin_stdout_stderr_and_the_exit_code() {
        let request = ExecRequest {
            command: sh("cat; echo oops >&2; exit 3"),
            tty: false,
            stdin: true,
        };
        let env = [("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        let mut session = spawn(&request.command, &env, Path::new("/"), &request).expect("spawned");
        let mut stdin = session.stdin.take().expect("stdin");
        stdin.write_all(b"hello\n").await.expect("write");
        drop(stdin);
        let out = read_all(session.stdout.take()).await;
        let err = read_all(session.stderr.take()).await;
        assert_eq!((out.as_str(), err.as_str()), ("hello\n", "oops\n"));
        assert_eq!(session.exit.await, Ok(3));
    }

    #[tokio::test]
    async fn a_terminal_is_the_command_s_controlling_one_and_takes_a_size() {
        let request = ExecRequest {
            command: sh("stty size; tty -s && echo tty; exit 0"),
            tty: true,
            stdin: true,
        };
        let env = [("PATH".to_owned(), "/usr/bin:/bin".to_owned())];
        let mut session = spawn(&request.command, &env, Path::new("/"), &request).expect("spawned");
        let out = read_all(session.stdout.take()).await;
        assert_eq!(out.replace('\r', ""), "24 80\ntty\n");
        assert_eq!(session.exit.await, Ok(0));
    }
}
