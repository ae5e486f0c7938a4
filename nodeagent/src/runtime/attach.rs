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
pub fn from_log(log: PathBuf, ended: BoxFuture<'static, ()>, tty: bool) -> ExecSession {
    let (mut out_writer, out_reader) = tokio::io::duplex(64 * 1024);
    let (mut err_writer, err_reader) = tokio::io::duplex(64 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut offset = tokio::fs::metadata(&log).await.map_or(0, |m| m.len());
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
