//! A container's keeper, so that its processes outlive the node agent (a kubelet restarted,
//! even with SIGKILL, leaves its pods running, as containerd's shims do): the container's
//! command runs as the child of a small `sh` that
//!
//! - writes the command's stdout and stderr into two named pipes beside the log file
//!   (`<n>.stdout`, `<n>.stderr`), which it also holds open itself, so that a write never fails
//!   while no agent reads them (it waits once the pipe is full, as a stalled logger makes it);
//! - writes the command's exit code (128 + the signal when one ended it) to `<n>.exit`;
//! - for a container whose spec asks for `stdin`, gives the command a third named pipe as
//!   its stdin (`<n>.stdin`), which `kubectl attach -i` writes to; the keeper holds it open
//!   for writing too, so the command never reads its end, unless the spec says `stdinOnce`:
//!   then the node agent holds the only writer and hands it to the first attach, whose end
//!   is the end of the command's stdin. With `tty`, the command runs on a terminal of its
//!   own made by util-linux `script`, which relays the pipe to it;
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

/// The keeper's script: `$1` stdout pipe, `$2` stderr pipe, `$3` exit file, `$4` the stdin
/// pipe, `$5` `hold` when the keeper keeps a writer of it, then the command. The command's
/// stdin is the keeper's own (the agent opens the stdin pipe's read end and gives it to the
/// keeper, so a writer never writes into a pipe nobody has opened yet; or `/dev/null`).
const SCRIPT: &str = r#"out=$1 err=$2 code_file=$3 in=$4 hold=$5; shift 5
trap : TERM INT HUP
exec 3<>"$out" 4<>"$err"
if [ "$hold" = hold ]; then exec 5<>"$in"; fi
"$@" >"$out" 2>"$err" 3<&- 4<&- 5<&-
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
    /// The stdin pipe (made only for a container with `stdin`).
    pub stdin: PathBuf,
}

/// How a container's stdin is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdin {
    /// None: `/dev/null`.
    Null,
    /// The stdin pipe, kept open by the keeper (attach after attach writes to it).
    Held,
    /// The stdin pipe, whose only writer the node agent holds until the first attach ends.
    Once,
}

impl Stdin {
    /// What a container's spec asks for.
    pub fn of(stdin: bool, once: bool) -> Stdin {
        match (stdin, once) {
            (false, _) => Stdin::Null,
            (true, false) => Stdin::Held,
            (true, true) => Stdin::Once,
        }
    }
}

impl Pipes {
    /// The keeper files of the log file `log` (`<n>.log` → `<n>.stdout`, ...).
    pub fn beside(log: &Path) -> Pipes {
        Pipes {
            stdout: log.with_extension("stdout"),
            stderr: log.with_extension("stderr"),
            exit: log.with_extension("exit"),
            stdin: log.with_extension("stdin"),
        }
    }

    /// Makes the pipes afresh (the stdin pipe when `stdin` is not [`Stdin::Null`]), and no
    /// exit file.
    pub fn make(&self, stdin: Stdin) -> io::Result<()> {
        self.remove()?;
        let mut paths = vec![&self.stdout, &self.stderr];
        if stdin != Stdin::Null {
            paths.push(&self.stdin);
        }
        for path in paths {
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
        for path in [&self.stdout, &self.stderr, &self.exit, &self.stdin] {
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

    /// A writer of the stdin pipe (read-write: opening never waits, and while it is open the
    /// command never reads the end of its stdin).
    pub fn stdin_holder(&self) -> io::Result<pipe::Sender> {
        pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&self.stdin)
    }

    /// A writer of the stdin pipe for one attach (the command reads the other end).
    pub fn stdin_writer(&self) -> io::Result<pipe::Sender> {
        pipe::OpenOptions::new().open_sender(&self.stdin)
    }

    /// The stdin pipe's read end, blocking, for the keeper's stdin (opening it never waits).
    pub fn stdin_reader(&self) -> io::Result<std::os::fd::OwnedFd> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            &self.stdin,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // Non-blocking only to open without a writer: the command reads it blocking.
        rustix::fs::fcntl_setfl(&fd, OFlags::empty())?;
        Ok(fd)
    }
}

/// `command` as one argument of `sh -c`, each word single-quoted.
fn quoted(command: &[String]) -> String {
    command
        .iter()
        .map(|word| format!("'{}'", word.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The shell, by absolute path (a container's own `PATH` must not decide which runs).
fn shell() -> &'static str {
    ["/bin/sh", "/usr/bin/sh"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("sh")
}

/// The program and arguments that run `command` under a keeper writing to `pipes`, with
/// its stdin as `stdin` says and, with `tty`, on a terminal of its own.
pub fn wrap(pipes: &Pipes, command: &[String], stdin: Stdin, tty: bool) -> Vec<String> {
    let mut out = vec![
        shell().to_owned(),
        "-c".to_owned(),
        SCRIPT.to_owned(),
        "keeper".to_owned(),
        pipes.stdout.display().to_string(),
        pipes.stderr.display().to_string(),
        pipes.exit.display().to_string(),
        pipes.stdin.display().to_string(),
        if stdin == Stdin::Held { "hold" } else { "-" }.to_owned(),
    ];
    if tty {
        // util-linux `script`: a pseudo-terminal with the command as its session leader,
        // stdin relayed to it, its output to stdout; `-e` returns the command's exit code.
        out.extend([
            "script".to_owned(),
            "-qfec".to_owned(),
            quoted(command),
            "/dev/null".to_owned(),
        ]);
    } else {
        out.extend(command.iter().cloned());
    }
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
        pipes.make(Stdin::Null).expect("pipes");
        let (out, err) = pipes.open().expect("opened");
        let command = wrap(
            &pipes,
            &[
                "sh".into(),
                "-c".into(),
                "echo one; echo two >&2; printf tail; exit 7".into(),
            ],
            Stdin::Null,
            false,
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

    #[tokio::test]
    async fn a_stdin_once_ends_when_its_writer_does() {
        use tokio::io::AsyncWriteExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        let pipes = Pipes::beside(&log);
        pipes.make(Stdin::Once).expect("pipes");
        let (out, _err) = pipes.open().expect("opened");
        let mut writer = pipes.stdin_holder().expect("holder");
        let command = wrap(
            &pipes,
            &["sh".into(), "-c".into(), "cat; echo over".into()],
            Stdin::Once,
            false,
        );
        let reader = pipes.stdin_reader().expect("reader");
        let mut child = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .stdin(std::process::Stdio::from(reader))
            .spawn()
            .expect("keeper");
        writer.write_all(b"typed\n").await.expect("written");
        drop(writer);
        let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
            .await
            .expect("cat ends with its stdin")
            .expect("waited");
        assert_eq!(status.code(), Some(0));
        let mut buf = vec![0u8; 256];
        let n = out.try_read(&mut buf).expect("output");
        assert_eq!(&buf[..n], b"typed\nover\n");
    }

    #[test]
    fn words_are_quoted_for_script() {
        assert_eq!(
            quoted(&["sh".into(), "-c".into(), "echo 'a b'".into()]),
            "'sh' '-c' 'echo '\\''a b'\\'''"
        );
    }
}
