//! SPDY tunnelled through a WebSocket (`SPDY/3.1+portforward.k8s.io`, what kubectl 1.31+
//! asks for first): the connection's bytes travel as binary messages, cut wherever the
//! sender's writes fell, so the WebSocket is turned back into a byte stream for the SPDY
//! session. A close message or the end of the socket is the end of the stream.

use axum::extract::ws::{Message, WebSocket};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// Bytes buffered between the socket and the session in each direction.
const BUFFER: usize = 64 * 1024;

/// The byte stream the session reads and writes; pumps run until either side ends.
pub fn bytes_of(socket: WebSocket) -> DuplexStream {
    let (session_end, mut pump_end) = tokio::io::duplex(BUFFER);
    tokio::spawn(async move {
        let (mut sink, mut stream) = socket.split();
        let (mut from_session, mut to_session) = tokio::io::split(&mut pump_end);
        let inbound = async {
            while let Some(message) = stream.next().await {
                match message {
                    Ok(Message::Binary(data)) => to_session.write_all(&data).await?,
                    Ok(Message::Close(_)) => break,
                    Ok(Message::Text(_)) => {
                        tracing::debug!("a text message on a SPDY tunnel is ignored");
                    }
                    Ok(Message::Ping(_) | Message::Pong(_)) => {}
                    Err(e) => {
                        tracing::debug!(error = %e, "a SPDY tunnel's socket failed");
                        break;
                    }
                }
            }
            to_session.shutdown().await
        };
        let outbound = async {
            let mut buffer = vec![0u8; BUFFER];
            loop {
                let n = from_session.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                let message = Message::Binary(Bytes::copy_from_slice(&buffer[..n]));
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            if let Err(e) = sink.send(Message::Close(None)).await {
                tracing::debug!(error = %e, "a SPDY tunnel closed without its close message");
            }
            Ok::<(), std::io::Error>(())
        };
        let (inbound, outbound) = tokio::join!(inbound, outbound);
        for result in [inbound, outbound] {
            if let Err(e) = result {
                tracing::debug!(error = %e, "a SPDY tunnel pump ended with an error");
            }
        }
    });
    session_end
}
