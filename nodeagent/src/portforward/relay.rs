//! The bytes of one forwarded connection, whatever protocol carries them: the client's
//! chunks written to the pod (their end half-closes the pod's side), the pod's bytes read and
//! handed to the protocol as its messages, until the pod ends its side, the connection to the
//! client goes, or the forward is cancelled.

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The most read from the pod per message.
const CHUNK: usize = 32 * 1024;

/// How a relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The pod ended its side: everything it sent was handed on.
    PodClosed,
    /// Cancelled, the client gone, or a read from the pod failed.
    Stopped,
}

/// The message a failed dial of `port` becomes, as a kubelet words it.
pub fn refusal(port: u16, pod: &str, message: &str) -> String {
    format!("error forwarding port {port} to pod {pod}: {message}")
}

/// Relays `tcp` both ways: `to_pod` into it, its bytes out through `out` as `message(bytes)`.
pub async fn relay<M>(
    tcp: TcpStream,
    mut to_pod: mpsc::Receiver<Bytes>,
    out: &mpsc::Sender<M>,
    message: impl Fn(Bytes) -> M,
    cancel: &CancellationToken,
) -> Ended {
    let (mut from_pod, mut into_pod) = tcp.into_split();
    let up = async move {
        while let Some(chunk) = to_pod.recv().await {
            into_pod.write_all(&chunk).await?;
        }
        // The client sends no more: the pod reads its end of stream.
        into_pod.shutdown().await
    };
    let down = async {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            match from_pod.read(&mut buffer).await {
                Ok(0) => return Ended::PodClosed,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buffer[..n]);
                    if out.send(message(chunk)).await.is_err() {
                        return Ended::Stopped;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "reading from the pod failed");
                    return Ended::Stopped;
                }
            }
        }
    };
    tokio::pin!(up, down);
    let mut up_done = false;
    loop {
        tokio::select! {
            written = &mut up, if !up_done => {
                up_done = true;
                if let Err(e) = written {
                    tracing::debug!(error = %e, "writing to the pod failed");
                }
            }
            ended = &mut down => return ended,
            () = cancel.cancelled() => return Ended::Stopped,
        }
    }
}
