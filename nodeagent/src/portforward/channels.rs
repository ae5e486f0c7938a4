//! The kubelet's own WebSocket port-forward protocol (subprotocol `v4.channel.k8s.io`, or
//! none), which the kube crate's `Api::portforward` and the official Python client speak. The
//! ports are fixed by the request (`?ports=8080,9090`), one TCP connection each. Port `i`
//! has data channel `2i` and error channel `2i+1`; every binary message starts with its
//! channel byte. The server first sends each channel its port number (two bytes, little
//! endian), dials every port, then relays: data messages both ways, a failed dial as text on
//! the error channel. The protocol cannot half-close one port, so the socket is closed once
//! every pod connection has ended (or at once when the client closes it).

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Target;
use super::dial::PortDialer;
use super::relay::{refusal, relay};

/// The subprotocols this protocol is offered under.
pub const PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "portforward.k8s.io"];
/// The most ports one request may name (each takes two channel numbers of one byte).
const MAX_PORTS: usize = 128;

/// The ports of a request's query (`ports=8080,9090`, repeatable), in order.
pub fn ports_of(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key != "ports" {
            continue;
        }
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse::<u16>() {
                Ok(p) if p > 0 => ports.push(p),
                _ => return Err(format!("invalid port {part:?}: ports are 1 to 65535")),
            }
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"ports\" is required".into());
    }
    if ports.len() > MAX_PORTS {
        return Err(format!(
            "at most {MAX_PORTS} ports may be forwarded at once"
        ));
    }
    Ok(ports)
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut message = BytesMut::with_capacity(data.len() + 1);
    message.put_u8(channel);
    message.put_slice(data);
    Message::Binary(message.freeze())
}

/// Serves one socket until every pod connection has ended, the client closes it, or
/// `shutdown` fires.
pub async fn serve(
    socket: WebSocket,
    ports: Vec<u16>,
    target: Target,
    dialer: Arc<dyn PortDialer>,
    shutdown: CancellationToken,
) {
    let (mut sink, mut stream) = socket.split();
    let (out, mut outgoing) = mpsc::channel::<Message>(64);
    let cancel = shutdown.child_token();
    let writer_cancel = cancel.clone();
    let writing = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            if let Err(e) = sink.send(message).await {
                tracing::debug!(error = %e, "a port-forward socket's writes ended");
                writer_cancel.cancel();
                return;
            }
        }
        if let Err(e) = sink.send(Message::Close(None)).await {
            tracing::debug!(error = %e, "a port-forward socket closed without its close message");
        }
    });
    let mut to_pods = Vec::with_capacity(ports.len());
    let forwards = TaskTracker::new();
    for (index, port) in ports.iter().copied().enumerate() {
        let data = (2 * index) as u8;
        for channel in [data, data + 1] {
            if out
                .send(framed(channel, &port.to_le_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        to_pods.push(Some(tx));
        let forward = Forward {
            target: target.clone(),
            port,
            data,
            out: out.clone(),
        };
        let (dialer, cancel) = (dialer.clone(), cancel.clone());
        forwards.spawn(async move { forward.run(dialer, rx, cancel).await });
    }
    forwards.close();
    let reading = async {
        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Binary(bytes)) if !bytes.is_empty() => {
                    let channel = usize::from(bytes[0]);
                    // Clients send on data channels only; anything else is dropped.
                    if channel % 2 != 0 || bytes.len() == 1 {
                        continue;
                    }
                    let Some(slot) = to_pods.get_mut(channel / 2) else {
                        tracing::debug!(channel, "a message on a channel of no port");
                        continue;
                    };
                    if let Some(tx) = slot
                        && tx.send(bytes.slice(1..)).await.is_err()
                    {
                        *slot = None;
                    }
                }
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::select! {
        () = reading => tracing::debug!("the client closed a port-forward socket"),
        () = forwards.wait() => tracing::debug!("every forwarded connection ended"),
        () = cancel.cancelled() => {}
    }
    cancel.cancel();
    forwards.wait().await;
    drop(out);
    if let Err(e) = writing.await {
        tracing::warn!(error = %e, "a port-forward socket writer failed");
    }
}

/// One port's connection.
struct Forward {
    target: Target,
    port: u16,
    data: u8,
    out: mpsc::Sender<Message>,
}

impl Forward {
    async fn run(
        self,
        dialer: Arc<dyn PortDialer>,
        to_pod: mpsc::Receiver<Bytes>,
        cancel: CancellationToken,
    ) {
        let dialled = tokio::select! {
            d = dialer.dial(&self.target.ports, self.port) => d,
            () = cancel.cancelled() => return,
        };
        match dialled {
            Ok(tcp) => {
                let channel = self.data;
                relay(
                    tcp,
                    to_pod,
                    &self.out,
                    |data| framed(channel, &data),
                    &cancel,
                )
                .await;
            }
            Err(message) => {
                let message = refusal(self.port, &self.target.pod, &message);
                tracing::info!(%message, "port-forward");
                if self
                    .out
                    .send(framed(self.data + 1, message.as_bytes()))
                    .await
                    .is_err()
                {
                    tracing::debug!("a port-forward error was not sent: the socket is gone");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_query() {
        assert_eq!(ports_of("ports=80%2C8080"), Ok(vec![80, 8080]));
        assert_eq!(ports_of("ports=80&ports=81"), Ok(vec![80, 81]));
        assert!(ports_of("").is_err_and(|e| e.contains("\"ports\" is required")));
        assert!(ports_of("ports=0").is_err());
        assert!(ports_of("ports=http").is_err_and(|e| e.contains("\"http\"")));
        assert!(ports_of("ports=70000").is_err());
    }

    #[test]
    fn messages_carry_their_channel_first() {
        let Message::Binary(bytes) = framed(3, &8080u16.to_le_bytes()) else {
            panic!("binary");
        };
        assert_eq!(&bytes[..], &[3, 0x90, 0x1f]);
    }
}
