//! The kubelet's `exec` endpoint over WebSocket, in Kubernetes' remote-command protocol
//! (`v5.channel.k8s.io`, which kubectl 1.31+ speaks first, and `v4.channel.k8s.io`): every
//! binary message starts with its channel (0 stdin, 1 stdout, 2 stderr, 3 the final status,
//! 4 terminal resizes as `{"Width":W,"Height":H}`); v5 adds `[255, channel]`, the client's
//! half-close of a stream (its stdin at end of input). The command's output goes out as it
//! comes, and after its end a `Status` on channel 3 says Success, or Failure with the
//! `NonZeroExitCode` cause kubectl turns into its own exit code. A client that goes away kills
//! the command.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::runtime::exec::{ExecRequest, ExecSession, Output};

/// The subprotocols served, most preferred first.
pub const PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// Channel numbers.
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// How long output may still arrive after the command ended (something it started in the
/// background may hold its pipes open).
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Why an exec request cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExecError {
    /// No command was given.
    #[error("you must specify at least one command for the container")]
    NoCommand,
    /// A flag was not a boolean.
    #[error("{0}: not a boolean: {1:?}")]
    Flag(&'static str, String),
}

/// What the query of an exec request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecQuery {
    /// The command (the repeated `command` parameters).
    pub request: ExecRequest,
    /// Whether stdout and stderr are wanted.
    pub stdout: bool,
    /// Whether stderr is wanted (not with a terminal).
    pub stderr: bool,
}

fn flag(pairs: &HashMap<String, String>, name: &'static str) -> Result<bool, ExecError> {
    match pairs.get(name).map(String::as_str) {
        // As Go's ParseBool reads them (the Python client sends `True`).
        None | Some("" | "0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some(other) => Err(ExecError::Flag(name, other.to_owned())),
    }
}

impl ExecQuery {
    /// Reads the query string of an exec request.
    pub fn parse(query: &str) -> Result<ExecQuery, ExecError> {
        let parsed = ExecQuery::parse_streams(query)?;
        if parsed.request.command.is_empty() {
            return Err(ExecError::NoCommand);
        }
        Ok(parsed)
    }

    /// The query of an attach request: the same streams, no command.
    pub fn parse_attach(query: &str) -> Result<ExecQuery, ExecError> {
        ExecQuery::parse_streams(query)
    }

    fn parse_streams(query: &str) -> Result<ExecQuery, ExecError> {
        let mut command = Vec::new();
        let mut pairs = HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()).into_owned() {
            if k == "command" {
                command.push(v);
            } else {
                pairs.insert(k, v);
            }
        }
        let tty = flag(&pairs, "tty")?;
        Ok(ExecQuery {
            request: ExecRequest {
                command,
                tty,
                stdin: flag(&pairs, "stdin")?,
            },
            stdout: flag(&pairs, "stdout")?,
            stderr: flag(&pairs, "stderr")? && !tty,
        })
    }
}

/// The final status message: Success, or the exit code as kubectl reads it.
pub fn status(command: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: command {command:?} exited with {code}"
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}
    })
}

/// The status of an exec that could not run.
pub fn failure(message: &str) -> serde_json::Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500
    })
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel);
    frame.extend_from_slice(data);
    Message::Binary(Bytes::from(frame))
}

/// Sends what `output` produces on `channel` until it ends.
async fn pump(mut output: Output, channel: u8, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match output.read(&mut buf).await {
            Ok(0) => return,
            Ok(n) => {
                if out.send(framed(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!(channel, error = %e, "an exec's output ended with an error");
                return;
            }
        }
    }
}

/// Serves one exec on `socket` until the command ends or the client goes.
pub async fn serve(socket: WebSocket, query: ExecQuery, session: Result<ExecSession, String>) {
    let (mut sink, mut incoming) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(32);
    let writer = tokio::spawn(async move {
        while let Some(message) = out_rx.recv().await {
            if let Err(e) = sink.send(message).await {
                tracing::debug!(error = %e, "the exec client stopped reading");
                return;
            }
        }
        // A normal closure (1000): the client reads it as the end of every stream.
        let close = CloseFrame {
            code: axum::extract::ws::close_code::NORMAL,
            reason: "".into(),
        };
        if let Err(e) = sink.send(Message::Close(Some(close))).await {
            tracing::debug!(error = %e, "the exec's close was not sent");
        }
    });
    let session = match session {
        Ok(session) => session,
        Err(message) => {
            let text = failure(&message).to_string();
            if out_tx.send(framed(STATUS, text.as_bytes())).await.is_err() {
                tracing::debug!("the exec client left before its failure was sent");
            }
            drop(out_tx);
            if let Err(e) = writer.await {
                tracing::warn!(error = %e, "the exec writer failed");
            }
            return;
        }
    };
    let ExecSession {
        stdin,
        stdout,
        stderr,
        terminal,
        exit,
        kill,
    } = session;
    let mut pumps = Vec::new();
    if let Some(stdout) = stdout.filter(|_| query.stdout || query.request.tty) {
        pumps.push(tokio::spawn(pump(stdout, STDOUT, out_tx.clone())));
    }
    if let Some(stderr) = stderr.filter(|_| query.stderr) {
        pumps.push(tokio::spawn(pump(stderr, STDERR, out_tx.clone())));
    }
    // Stdin is written by a task of its own: a command that does not read must not stop the
    // loop from seeing its end or the client's.
    let (in_tx, mut in_rx) = mpsc::channel::<Bytes>(32);
    let stdin_task = stdin.map(|mut stdin| {
        tokio::spawn(async move {
            while let Some(data) = in_rx.recv().await {
                if stdin.write_all(&data).await.is_err() || stdin.flush().await.is_err() {
                    return;
                }
            }
            // End of input: the command's stdin closes.
            if let Err(e) = stdin.shutdown().await {
                tracing::debug!(error = %e, "an exec's stdin did not close cleanly");
            }
        })
    });
    let mut in_tx = Some(in_tx);
    let mut exit = exit;
    let mut kill = Some(kill);
    let code = loop {
        tokio::select! {
            code = &mut exit => break Some(code),
            message = incoming.next() => match message.map(|m| m.map(|m| match m {
                // Some clients (the Python one) send their frames as text: the same bytes.
                Message::Text(text) => Message::Binary(Bytes::copy_from_slice(text.as_bytes())),
                other => other,
            })) {
                Some(Ok(Message::Binary(data))) => match data.first() {
                    Some(&STDIN) => {
                        if let Some(tx) = &in_tx && tx.send(data.slice(1..)).await.is_err() {
                            in_tx = None;
                        }
                    }
                    Some(&RESIZE) => {
                        let size: serde_json::Value = serde_json::from_slice(&data[1..]).unwrap_or_default();
                        let (w, h) = (size["Width"].as_u64(), size["Height"].as_u64());
                        if let (Some(t), Some(w), Some(h)) = (&terminal, w, h)
                            && let Err(e) = t.resize(w.min(u16::MAX.into()) as u16, h.min(u16::MAX.into()) as u16)
                        {
                            tracing::debug!(error = %e, "a terminal resize failed");
                        }
                    }
                    Some(&CLOSE) if data.get(1) == Some(&STDIN) => in_tx = None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => break None,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "the exec client's connection failed");
                    break None;
                }
                Some(Ok(_)) => {}
            },
        }
    };
    drop(in_tx);
    let Some(code) = code else {
        // The client went away: the command goes too.
        if let Some(kill) = kill.take() {
            kill();
        }
        if let Err(e) = exit.await {
            tracing::debug!(error = %e, "an abandoned exec ended");
        }
        writer.abort();
        return;
    };
    for pump in pumps {
        if tokio::time::timeout(DRAIN, pump).await.is_err() {
            tracing::debug!("an exec's output was still open after it ended");
        }
    }
    if let Some(task) = stdin_task {
        task.abort();
    }
    let text = match code {
        Ok(code) => status(&query.request.command, code),
        Err(e) => failure(&e.to_string()),
    }
    .to_string();
    if out_tx.send(framed(STATUS, text.as_bytes())).await.is_err() {
        tracing::debug!("the exec client left before the status was sent");
    }
    drop(out_tx);
    if let Err(e) = writer.await {
        tracing::warn!(error = %e, "the exec writer failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_names_the_command_and_its_streams() {
        let q = ExecQuery::parse(
            "command=sh&command=-c&command=echo+hi&stdin=true&stdout=1&stderr=true&tty=false",
        )
        .expect("query");
        assert_eq!(q.request.command, ["sh", "-c", "echo hi"]);
        assert!(q.request.stdin && q.stdout && q.stderr && !q.request.tty);
        let tty = ExecQuery::parse("command=sh&tty=True&stderr=1").expect("tty");
        assert!(!tty.stderr, "a terminal has no stderr of its own");
        assert_eq!(ExecQuery::parse("stdout=1"), Err(ExecError::NoCommand));
        assert!(matches!(
            ExecQuery::parse("command=x&tty=maybe"),
            Err(ExecError::Flag("tty", _))
        ));
    }

    #[test]
    fn the_status_carries_the_exit_code_as_kubectl_reads_it() {
        assert_eq!(status(&["true".into()], 0)["status"], "Success");
        let failed = status(&["false".into()], 1);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "1");
    }
}
