//! The client side of a CRI runtime's streaming server for `Exec`: the URL the runtime
//! hands out is opened as a WebSocket in `v4.channel.k8s.io` (each message's first byte
//! names its stream: 0 stdin, 1 stdout, 2 stderr, 3 the final status, 4 terminal size), and
//! its streams become an [`ExecSession`] like the `process` runtime's, which the node
//! endpoint serves to `kubectl exec`.
//!
//! `v4` has no way to close stdin alone: a command that reads stdin to its end (`kubectl cp`
//! into a container) sees the end only when the client goes.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::runtime::RuntimeError;
use crate::runtime::exec::{ExecRequest, ExecSession, Terminal};

const PROTOCOL: &str = "v4.channel.k8s.io";
const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;

/// How much output waits for its reader before the stream pushes back.
const BUFFER: usize = 64 * 1024;

/// The exit code in a `v4` final status: `Success` is 0, a `NonZeroExitCode` failure carries
/// its code as the message of the `ExitCode` cause.
pub fn exit_code(status: &[u8]) -> Result<i32, RuntimeError> {
    let value: serde_json::Value = serde_json::from_slice(status)
        .map_err(|e| RuntimeError::Failed(format!("the exec's status is not JSON: {e}")))?;
    if value.get("status").and_then(|s| s.as_str()) == Some("Success") {
        return Ok(0);
    }
    let code = value
        .pointer("/details/causes")
        .and_then(|c| c.as_array())
        .into_iter()
        .flatten()
        .find(|c| c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode"))
        .and_then(|c| c.get("message").and_then(|m| m.as_str()))
        .and_then(|m| m.parse().ok());
    code.ok_or_else(|| {
        RuntimeError::Failed(format!(
            "exec failed: {}",
            value
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("no message")
        ))
    })
}

/// Resizes the remote terminal through channel 4.
struct RemoteTerminal {
    frames: mpsc::UnboundedSender<Vec<u8>>,
}

impl Terminal for RemoteTerminal {
    fn resize(&self, width: u16, height: u16) -> Result<(), RuntimeError> {
        let mut frame = vec![RESIZE];
        frame.extend(
            serde_json::json!({"Width": width, "Height": height})
                .to_string()
                .bytes(),
        );
        self.frames
            .send(frame)
            .map_err(|_| RuntimeError::Failed("the exec has ended".into()))
    }
}

/// Opens the streams of an exec the runtime prepared at `url`.
pub async fn open(url: &str, request: &ExecRequest) -> Result<ExecSession, RuntimeError> {
    // The runtime says http://; the same address is spoken to as a WebSocket.
    let ws_url = match url.split_once("://") {
        Some(("http", rest)) => format!("ws://{rest}"),
        Some(("https", rest)) => format!("wss://{rest}"),
        _ => url.to_owned(),
    };
    let mut ws_request = ws_url
        .into_client_request()
        .map_err(|e| RuntimeError::Failed(format!("the runtime's exec URL {url}: {e}")))?;
    ws_request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        http::HeaderValue::from_static(PROTOCOL),
    );
    let (socket, response) = tokio_tungstenite::connect_async(ws_request)
        .await
        .map_err(|e| RuntimeError::Failed(format!("opening the runtime's exec stream: {e}")))?;
    tracing::debug!(protocol = ?response.headers().get("Sec-WebSocket-Protocol"), "exec stream open");
    let (mut sink, mut source) = socket.split();

    // Everything sent goes through one queue: stdin, resizes, the close.
    let (frames, mut queued) = mpsc::unbounded_channel::<Vec<u8>>();
    let sender = tokio::spawn(async move {
        while let Some(frame) = queued.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        if let Err(e) = sink.close().await {
            tracing::debug!(error = %e, "the exec stream did not close cleanly");
        }
    });

    let stdin = if request.stdin {
        let (writer, mut reader) = tokio::io::duplex(BUFFER);
        let frames = frames.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let mut frame = Vec::with_capacity(n + 1);
                        frame.push(STDIN);
                        frame.extend_from_slice(&buf[..n]);
                        if frames.send(frame).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Some(Box::new(writer) as crate::runtime::exec::Input)
    } else {
        None
    };

    let (mut out_writer, out_reader) = tokio::io::duplex(BUFFER);
    let (mut err_writer, err_reader) = tokio::io::duplex(BUFFER);
    let (exit_tx, exit_rx) = oneshot::channel();
    // The socket stays open while the command runs, whatever its stdin does: the receiver
    // holds the queue open until the runtime ends the stream.
    let keep_open = frames.clone();
    let receiver = tokio::spawn(async move {
        let _keep_open = keep_open;
        let mut status = None;
        while let Some(message) = source.next().await {
            let data = match message {
                Ok(Message::Binary(data)) => data,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    status = Some(Err(RuntimeError::Failed(format!(
                        "the runtime's exec stream broke: {e}"
                    ))));
                    break;
                }
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            let written = match channel {
                STDOUT => out_writer.write_all(payload).await,
                STDERR => err_writer.write_all(payload).await,
                STATUS if !payload.is_empty() => {
                    status = Some(exit_code(payload));
                    Ok(())
                }
                _ => Ok(()),
            };
            if written.is_err() {
                // The reader is gone (the client left): nothing more to deliver.
                break;
            }
        }
        // The outputs end before the exit is told, as the client reads them in that order.
        drop((out_writer, err_writer));
        if exit_tx.send(status.unwrap_or(Ok(0))).is_err() {
            tracing::debug!("nobody waits for the exec's exit any more");
        }
    });

    let terminal = request.tty.then(|| {
        Box::new(RemoteTerminal {
            frames: frames.clone(),
        }) as Box<dyn Terminal>
    });
    let sender_abort = sender.abort_handle();
    let receiver_abort = receiver.abort_handle();
    Ok(ExecSession {
        stdin,
        stdout: Some(Box::new(out_reader)),
        stderr: (!request.tty).then(|| Box::new(err_reader) as crate::runtime::exec::Output),
        terminal,
        exit: Box::pin(async move {
            exit_rx
                .await
                .unwrap_or_else(|_| Err(RuntimeError::Failed("the exec stream was dropped".into())))
        }),
        kill: Box::new(move || {
            sender_abort.abort();
            receiver_abort.abort();
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::exit_code;

    #[test]
    fn statuses_give_exit_codes() {
        assert_eq!(exit_code(br#"{"metadata":{},"status":"Success"}"#), Ok(0));
        let failed = br#"{"status":"Failure","reason":"NonZeroExitCode",
            "details":{"causes":[{"reason":"ExitCode","message":"3"}]},
            "message":"command terminated with non-zero exit code: 3"}"#;
        assert_eq!(exit_code(failed), Ok(3));
        assert!(exit_code(br#"{"status":"Failure","message":"no such container"}"#).is_err());
        assert!(exit_code(b"not json").is_err());
    }
}
