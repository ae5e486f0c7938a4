//! `kubectl attach` on a runtime that writes its containers' output to CRI log files (the
//! `process` runtime): the container's output is served from its log file as it is written,
//! from the moment of attaching, each record to the stream it came from, until the container
//! ends. A rotated file is followed into the new one.

use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use super::crilog;
use super::exec::{ExecSession, Output};

/// How often the file is looked at for new records.
const POLL: Duration = Duration::from_millis(100);

/// The records written to `log` from now on, as an attach session's stdout and stderr (one
/// stream with a terminal); it ends when `ended` resolves.
///
/// "Now" is when this returns, before the session's stdin can carry anything: what the
/// container answers to its input is written after that point, however soon it answers.
pub async fn from_log(log: PathBuf, ended: BoxFuture<'static, ()>, tty: bool) -> ExecSession {
    let (mut out_writer, out_reader) = tokio::io::duplex(64 * 1024);
    let (mut err_writer, err_reader) = tokio::io::duplex(64 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let mut offset = tokio::fs::metadata(&log).await.map_or(0, |m| m.len());
    let task = tokio::spawn(async move {
        let mut ended = ended;
        let mut last = false;
        loop {
            let chunk = match crate::logs::read_from(&log, offset).await {
                Ok((chunk, next)) => {
                    offset = next;
                    chunk
                }
                Err(e) => {
                    tracing::debug!(log = %log.display(), error = %e, "an attached log could not be read");
                    String::new()
                }
            };
            for line in chunk.lines() {
                let Some((_, stream, complete, text)) = crilog::parse(line) else {
                    continue;
                };
                let mut bytes = text.as_bytes().to_vec();
                if complete {
                    bytes.push(b'\n');
                }
                let to = if stream == "stderr" && !tty {
                    &mut err_writer
                } else {
                    &mut out_writer
                };
                if to.write_all(&bytes).await.is_err() {
                    // The client went away.
                    return;
                }
            }
            if last {
                break;
            }
            tokio::select! {
                () = &mut ended => last = true,
                () = tokio::time::sleep(POLL) => {}
            }
        }
        drop((out_writer, err_writer));
        if done_tx.send(()).is_err() {
            tracing::debug!("nobody waits for the attached container's end");
        }
    });
    let abort = task.abort_handle();
    ExecSession {
        stdin: None,
        stdout: Some(Box::new(out_reader)),
        stderr: (!tty).then(|| Box::new(err_reader) as Output),
        terminal: None,
        exit: Box::pin(async move {
            // The container ended (or the runtime went): attach reports no exit code.
            if done_rx.await.is_err() {
                tracing::debug!("an attach ended before its container");
            }
            Ok(0)
        }),
        kill: Box::new(move || abort.abort()),
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    /// A container that answers its input at once: the answer is written to the log right
    /// after the attach is made, before the follower's task has first run. It must be shown,
    /// and what the log held before the attach must not.
    #[tokio::test]
    async fn output_written_right_after_attaching_is_shown() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("0.log");
        std::fs::write(&log, crilog::records("stdout", b"before", true)).expect("log");
        let (end_tx, end_rx) = tokio::sync::oneshot::channel::<()>();
        let ended = async move {
            if end_rx.await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        .boxed();
        let mut session = from_log(log.clone(), ended, false).await;
        // No await between the attach and the answer: the follower has not run yet.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .expect("open");
        std::io::Write::write_all(&mut file, &crilog::records("stdout", b"got one two", true))
            .expect("append");
        end_tx.send(()).expect("the follower waits");
        let out = super::super::exec::read_all(session.stdout.take()).await;
        assert_eq!(out, "got one two\n");
    }
}
