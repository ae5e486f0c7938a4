//! One port-forward connection (`portforward.k8s.io` over SPDY/3.1), as a kubelet serves
//! it. The client opens two streams per forwarded TCP connection, both carrying the headers
//! `port` and `requestid`: first `streamtype: error` (which it half-closes at once), then
//! `streamtype: data`. Every stream is answered with a SYN_REPLY. When both streams of a
//! request are open, a [`Forward`] dials the pod's port and copies bytes both ways: the
//! client's data frames to the pod (its FIN half-closes the pod's side), the pod's bytes as
//! data frames (the pod's end of stream as FIN). A dial that fails is reported as text on
//! the error stream; either way the error stream then ends with FIN, which the client waits
//! for. PINGs are echoed; a GOAWAY or the end of the connection cancels every forward.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::PortForwardError;
use super::dial::PortDialer;
use super::frame::{FLAG_FIN, Frame, rst};
use super::headers::{HeaderCodec, value};
use super::relay::{Ended, refusal, relay};
use crate::runtime::PodPorts;

/// Frames waiting for the writer (a forward's reads stop when the client is slow).
const OUTGOING: usize = 64;
/// Chunks of client bytes waiting for a pod.
const TO_POD: usize = 16;

/// The pod a connection forwards to.
#[derive(Debug, Clone)]
pub struct Target {
    /// `namespace/name`, for messages.
    pub pod: String,
    /// How its ports are reached.
    pub ports: PodPorts,
}

/// The streams of one request (`requestid`) while they open.
#[derive(Debug, Default)]
struct Opening {
    error: Option<u32>,
    data: Option<(u32, mpsc::Receiver<Bytes>)>,
    port: u16,
}

/// What an open stream is.
#[derive(Debug)]
enum Role {
    /// The error stream of a request.
    Error,
    /// The data stream of a request: the way to the pod while the client still sends, and
    /// the forward's cancellation.
    Data {
        to_pod: Option<mpsc::Sender<Bytes>>,
        cancel: CancellationToken,
    },
}

/// Serves one connection until the client goes away or `shutdown` fires.
pub async fn serve<IO>(
    io: IO,
    target: Target,
    dialer: Arc<dyn PortDialer>,
    shutdown: CancellationToken,
) -> Result<(), PortForwardError>
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(io);
    let (out, outgoing) = mpsc::channel::<Frame>(OUTGOING);
    let cancel = shutdown.child_token();
    let writing = tokio::spawn(write_frames(writer, outgoing, cancel.clone()));
    let forwards = TaskTracker::new();
    let mut session = Session {
        codec: HeaderCodec::new()?,
        out: out.clone(),
        target,
        dialer,
        cancel: cancel.clone(),
        forwards: forwards.clone(),
        streams: HashMap::new(),
        opening: HashMap::new(),
    };
    let read = tokio::select! {
        read = session.read_all(&mut reader) => read,
        () = cancel.cancelled() => {
            if shutdown.is_cancelled() && out.send(Frame::GoAway { last_stream: session.last_stream(), status: 0 }).await.is_err() {
                tracing::debug!("a port-forward connection ended before its GOAWAY");
            }
            Ok(())
        }
    };
    cancel.cancel();
    forwards.close();
    forwards.wait().await;
    drop(session);
    drop(out);
    match writing.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "a port-forward connection's writes ended"),
        Err(e) => tracing::warn!(error = %e, "a port-forward writer failed"),
    }
    read
}

/// Writes frames in the order they come until every sender is gone or the connection breaks.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut outgoing: mpsc::Receiver<Frame>,
    cancel: CancellationToken,
) -> Result<(), std::io::Error> {
    while let Some(frame) = outgoing.recv().await {
        let written = async {
            writer.write_all(&frame.encode()).await?;
            // Coalesce what is already queued, then send it.
            while let Ok(next) = outgoing.try_recv() {
                writer.write_all(&next.encode()).await?;
            }
            writer.flush().await
        }
        .await;
        if let Err(e) = written {
            // Nothing more can reach the client: stop the forwards.
            cancel.cancel();
            return Err(e);
        }
    }
    writer.shutdown().await
}

struct Session {
    codec: HeaderCodec,
    out: mpsc::Sender<Frame>,
    target: Target,
    dialer: Arc<dyn PortDialer>,
    cancel: CancellationToken,
    forwards: TaskTracker,
    streams: HashMap<u32, Role>,
    opening: HashMap<String, Opening>,
}

impl Session {
    fn last_stream(&self) -> u32 {
        self.streams.keys().copied().max().unwrap_or(0)
    }

    async fn send(&self, frame: Frame) -> Result<(), PortForwardError> {
        self.out
            .send(frame)
            .await
            .map_err(|_| PortForwardError::Closed)
    }

    async fn read_all<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<(), PortForwardError> {
        while let Some(frame) = Frame::read(reader).await? {
            match frame {
                Frame::SynStream {
                    stream,
                    flags,
                    block,
                } => {
                    let headers = self.codec.decode(&block)?;
                    self.open(stream, flags, &headers).await?;
                }
                Frame::Data { stream, fin, data } => self.data(stream, fin, data).await,
                Frame::RstStream { stream, status } => {
                    tracing::debug!(stream, status, "the client reset a port-forward stream");
                    if let Some(Role::Data { cancel, .. }) = self.streams.remove(&stream) {
                        cancel.cancel();
                    }
                }
                Frame::Ping { id } => self.send(Frame::Ping { id }).await?,
                Frame::GoAway { .. } => {
                    tracing::debug!("the client ended the port-forward connection");
                    return Ok(());
                }
                // Header blocks pass through the inflater even when unused, to keep it in step.
                Frame::Headers { block, .. } | Frame::SynReply { block, .. } => {
                    self.codec.decode(&block)?;
                }
                Frame::Settings | Frame::WindowUpdate | Frame::Unknown { .. } => {}
            }
        }
        Ok(())
    }

    /// A new stream: answered, then paired with its request's other stream.
    async fn open(
        &mut self,
        stream: u32,
        flags: u8,
        headers: &[(String, String)],
    ) -> Result<(), PortForwardError> {
        let reply = self.codec.encode(&[])?;
        self.send(Frame::SynReply {
            stream,
            fin: false,
            block: reply,
        })
        .await?;
        let kind = value(headers, "streamtype").unwrap_or_default().to_owned();
        let port = value(headers, "port").map(str::parse::<u16>);
        let request = value(headers, "requestid").map(str::to_owned);
        let port = match port {
            Some(Ok(p)) if p > 0 => p,
            _ => {
                tracing::warn!(
                    stream,
                    ?headers,
                    "a port-forward stream names no valid port"
                );
                return self.refuse(stream).await;
            }
        };
        // Clients before request ids paired streams by their ids (error, then data).
        let request = request.unwrap_or_else(|| {
            let error_id = if kind == "data" {
                stream.saturating_sub(2)
            } else {
                stream
            };
            format!("stream-{error_id}")
        });
        let opening = self.opening.entry(request.clone()).or_default();
        opening.port = port;
        match kind.as_str() {
            "error" => {
                opening.error = Some(stream);
                self.streams.insert(stream, Role::Error);
            }
            "data" => {
                let (tx, rx) = mpsc::channel(TO_POD);
                opening.data = Some((stream, rx));
                let fin = flags & FLAG_FIN != 0;
                self.streams.insert(
                    stream,
                    Role::Data {
                        to_pod: (!fin).then_some(tx),
                        cancel: self.cancel.child_token(),
                    },
                );
            }
            other => {
                tracing::warn!(
                    stream,
                    streamtype = other,
                    "a port-forward stream of an unknown type"
                );
                return self.refuse(stream).await;
            }
        }
        let complete = self
            .opening
            .get(&request)
            .is_some_and(|o| o.error.is_some() && o.data.is_some());
        if complete
            && let Some(Opening {
                error: Some(error),
                data: Some((data, to_pod)),
                port,
            }) = self.opening.remove(&request)
        {
            let cancel = match self.streams.get(&data) {
                Some(Role::Data { cancel, .. }) => cancel.clone(),
                _ => self.cancel.child_token(),
            };
            let forward = Forward {
                target: self.target.clone(),
                port,
                error,
                data,
                out: self.out.clone(),
            };
            let dialer = self.dialer.clone();
            let span = tracing::debug_span!("port_forward", pod = %forward.target.pod, port, stream = data);
            self.forwards
                .spawn(forward.run(dialer, to_pod, cancel).instrument(span));
        }
        Ok(())
    }

    async fn refuse(&mut self, stream: u32) -> Result<(), PortForwardError> {
        self.send(Frame::RstStream {
            stream,
            status: rst::PROTOCOL_ERROR,
        })
        .await
    }

    /// Client bytes: to the pod on a data stream; an error stream carries none that matter.
    async fn data(&mut self, stream: u32, fin: bool, data: Bytes) {
        let Some(Role::Data { to_pod, .. }) = self.streams.get_mut(&stream) else {
            return;
        };
        if !data.is_empty()
            && let Some(tx) = to_pod
            && tx.send(data).await.is_err()
        {
            // The forward is over: the bytes have nowhere to go.
            *to_pod = None;
        }
        if fin {
            *to_pod = None;
        }
    }
}

/// One forwarded TCP connection: a request's two streams and the pod's port.
struct Forward {
    target: Target,
    port: u16,
    error: u32,
    data: u32,
    out: mpsc::Sender<Frame>,
}

impl Forward {
    async fn run(
        self,
        dialer: Arc<dyn PortDialer>,
        to_pod: mpsc::Receiver<Bytes>,
        cancel: CancellationToken,
    ) {
        let dialled = tokio::select! {
            d = dialer.dial(&self.target.ports, self.port) => Some(d),
            () = cancel.cancelled() => None,
        };
        let mut data_finished = false;
        match dialled {
            Some(Ok(tcp)) => {
                let stream = self.data;
                let data = |data| Frame::Data {
                    stream,
                    fin: false,
                    data,
                };
                if relay(tcp, to_pod, &self.out, data, &cancel).await == Ended::PodClosed {
                    self.frame(self.data, true, Bytes::new()).await;
                    data_finished = true;
                }
            }
            Some(Err(message)) => {
                let message = refusal(self.port, &self.target.pod, &message);
                tracing::info!(%message, "port-forward");
                self.frame(self.error, false, Bytes::from(message)).await;
            }
            None => {}
        }
        self.frame(self.error, true, Bytes::new()).await;
        if !data_finished {
            self.frame(self.data, true, Bytes::new()).await;
        }
    }

    async fn frame(&self, stream: u32, fin: bool, data: Bytes) {
        if self
            .out
            .send(Frame::Data { stream, fin, data })
            .await
            .is_err()
        {
            tracing::debug!(
                stream,
                "a port-forward frame was not sent: the connection is gone"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portforward::LoopbackDialer;
    use std::time::Duration;
    use tokio::io::DuplexStream;

    /// The client side of a connection, speaking the frames a Go client sends.
    struct Client {
        io: DuplexStream,
        codec: HeaderCodec,
    }

    impl Client {
        async fn send(&mut self, frame: Frame) {
            self.io.write_all(&frame.encode()).await.expect("writes");
        }

        async fn open(&mut self, stream: u32, kind: &str, port: u16, request: &str) {
            let port = port.to_string();
            let block = self
                .codec
                .encode(&[
                    ("streamtype", kind),
                    ("port", &port),
                    ("requestid", request),
                ])
                .expect("encodes");
            self.send(Frame::SynStream {
                stream,
                flags: 0,
                block,
            })
            .await;
        }

        async fn next(&mut self) -> Frame {
            tokio::time::timeout(Duration::from_secs(10), Frame::read(&mut self.io))
                .await
                .expect("a frame within the deadline")
                .expect("reads")
                .expect("the connection is open")
        }

        /// Frames until `stream` finishes: its bytes (other frames are kept aside).
        async fn until_fin(&mut self, stream: u32, aside: &mut Vec<Frame>) -> Vec<u8> {
            let mut bytes = Vec::new();
            // Frames of this stream read earlier, while another was awaited.
            let (mine, others): (Vec<Frame>, Vec<Frame>) = std::mem::take(aside)
                .into_iter()
                .partition(|f| matches!(f, Frame::Data { stream: s, .. } if *s == stream));
            *aside = others;
            for frame in mine {
                if let Frame::Data { fin, data, .. } = frame {
                    bytes.extend_from_slice(&data);
                    if fin {
                        return bytes;
                    }
                }
            }
            loop {
                let next =
                    tokio::time::timeout(Duration::from_secs(10), Frame::read(&mut self.io)).await;
                let Ok(Ok(Some(next))) = next else {
                    panic!(
                        "no FIN on stream {stream} (got {:?} so far; aside {aside:?}): {next:?}",
                        String::from_utf8_lossy(&bytes)
                    );
                };
                match next {
                    Frame::Data {
                        stream: s,
                        fin,
                        data,
                    } if s == stream => {
                        bytes.extend_from_slice(&data);
                        if fin {
                            return bytes;
                        }
                    }
                    other => aside.push(other),
                }
            }
        }
    }

    fn start() -> (
        Client,
        tokio::task::JoinHandle<Result<(), PortForwardError>>,
        CancellationToken,
    ) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let target = Target {
            pod: "demo/web".into(),
            ports: PodPorts::Host,
        };
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(serve(
            far,
            target,
            Arc::new(LoopbackDialer),
            shutdown.clone(),
        ));
        let client = Client {
            io: near,
            codec: HeaderCodec::new().expect("codec"),
        };
        (client, served, shutdown)
    }

    async fn echo_server() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    if let Err(e) = tokio::io::copy(&mut r, &mut w).await {
                        tracing::debug!(error = %e, "echo");
                    }
                });
            }
        });
        port
    }

    #[tokio::test]
    async fn a_request_is_answered_forwarded_and_finished() {
        let port = echo_server().await;
        let (mut client, served, _shutdown) = start();
        client.open(1, "error", port, "0").await;
        assert!(matches!(
            client.next().await,
            Frame::SynReply { stream: 1, .. }
        ));
        client
            .send(Frame::Data {
                stream: 1,
                fin: true,
                data: Bytes::new(),
            })
            .await;
        client.open(3, "data", port, "0").await;
        assert!(matches!(
            client.next().await,
            Frame::SynReply { stream: 3, .. }
        ));
        client.send(Frame::Ping { id: 1 }).await;
        client
            .send(Frame::Data {
                stream: 3,
                fin: false,
                data: Bytes::from_static(b"hello "),
            })
            .await;
        client
            .send(Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::from_static(b"pod"),
            })
            .await;
        let mut aside = Vec::new();
        let echoed = client.until_fin(3, &mut aside).await;
        assert_eq!(
            echoed, b"hello pod",
            "the pod's bytes come back, then FIN when it closes"
        );
        let error = client.until_fin(1, &mut aside).await;
        assert!(
            error.is_empty(),
            "no error: {}",
            String::from_utf8_lossy(&error)
        );
        assert!(
            aside.contains(&Frame::Ping { id: 1 }),
            "the ping is echoed: {aside:?}"
        );
        client
            .send(Frame::GoAway {
                last_stream: 3,
                status: 0,
            })
            .await;
        let ended = tokio::time::timeout(Duration::from_secs(10), served).await;
        assert!(
            matches!(ended, Ok(Ok(Ok(())))),
            "the session ends on GOAWAY: {ended:?}"
        );
    }

    #[tokio::test]
    async fn two_connections_share_one_session() {
        let port = echo_server().await;
        let (mut client, _served, _shutdown) = start();
        for (request, error, data) in [("0", 1, 3), ("1", 5, 7)] {
            client.open(error, "error", port, request).await;
            client.open(data, "data", port, request).await;
        }
        client
            .send(Frame::Data {
                stream: 7,
                fin: true,
                data: Bytes::from_static(b"second"),
            })
            .await;
        client
            .send(Frame::Data {
                stream: 3,
                fin: true,
                data: Bytes::from_static(b"first"),
            })
            .await;
        let mut aside = Vec::new();
        assert_eq!(client.until_fin(7, &mut aside).await, b"second");
        assert_eq!(client.until_fin(3, &mut aside).await, b"first");
    }

    #[tokio::test]
    async fn a_closed_port_is_reported_on_the_error_stream() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
            listener.local_addr().expect("address").port()
        };
        let (mut client, _served, _shutdown) = start();
        client.open(1, "error", port, "0").await;
        client.open(3, "data", port, "0").await;
        let mut aside = Vec::new();
        let message = String::from_utf8(client.until_fin(1, &mut aside).await).expect("text");
        assert!(
            message.starts_with(&format!("error forwarding port {port} to pod demo/web:")),
            "{message}"
        );
        let data = client.until_fin(3, &mut aside).await;
        assert!(data.is_empty(), "the data stream ends without bytes");
    }

    #[tokio::test]
    async fn a_stream_without_a_port_is_reset() {
        let (mut client, _served, _shutdown) = start();
        let block = client
            .codec
            .encode(&[("streamtype", "data"), ("requestid", "0")])
            .expect("encodes");
        client
            .send(Frame::SynStream {
                stream: 1,
                flags: 0,
                block,
            })
            .await;
        assert!(matches!(
            client.next().await,
            Frame::SynReply { stream: 1, .. }
        ));
        assert_eq!(
            client.next().await,
            Frame::RstStream {
                stream: 1,
                status: rst::PROTOCOL_ERROR
            }
        );
    }

    #[tokio::test]
    async fn shutdown_sends_goaway_and_ends() {
        let (mut client, served, shutdown) = start();
        client.send(Frame::Ping { id: 7 }).await;
        assert_eq!(client.next().await, Frame::Ping { id: 7 });
        shutdown.cancel();
        assert!(matches!(client.next().await, Frame::GoAway { .. }));
        let ended = tokio::time::timeout(Duration::from_secs(10), served).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "{ended:?}");
    }

    #[tokio::test]
    async fn a_broken_header_block_ends_the_connection_with_an_error() {
        let (mut client, served, _shutdown) = start();
        client
            .send(Frame::SynStream {
                stream: 1,
                flags: 0,
                block: Bytes::from_static(b"not zlib"),
            })
            .await;
        let ended = tokio::time::timeout(Duration::from_secs(10), served).await;
        assert!(
            matches!(ended, Ok(Ok(Err(PortForwardError::Protocol(_))))),
            "{ended:?}"
        );
    }
}
