//! Port-forward, served as a kubelet serves it: for kubectl the `portforward.k8s.io`
//! protocol over SPDY/3.1, reached either by an HTTP upgrade to `SPDY/3.1` or tunnelled
//! through a WebSocket (`SPDY/3.1+portforward.k8s.io`, which kubectl 1.31+ tries first); for
//! the kube crate and the Python client the WebSocket channel protocol. The apiserver's
//! `pods/portforward` splices the client's upgraded connection to this one.
//!
//! - [`frame`]: SPDY/3.1 frames on the wire.
//! - [`headers`]: header blocks and their dictionary-primed zlib stream.
//! - [`session`]: one connection, its streams paired into forwards.
//! - [`dial`]: reaching the pod's port inside its network namespace.
//! - [`relay`]: one forwarded connection's bytes, both ways, whatever carries them.
//! - [`tunnel`]: a WebSocket turned back into the byte stream SPDY runs on.
//! - [`channels`]: the kubelet's WebSocket channel protocol (ports fixed by the request), for
//!   the kube crate and the Python client.

pub mod channels;
pub mod dial;
pub mod frame;
pub mod headers;
pub mod relay;
pub mod session;
pub mod tunnel;

pub use dial::{LoopbackDialer, NetnsDialer, PortDialer};
pub use session::{Target, serve};

/// The SPDY upgrade token.
pub const SPDY: &str = "SPDY/3.1";
/// The stream protocol negotiated in `X-Stream-Protocol-Version`.
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol of SPDY tunnelled through a WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The header that negotiates the stream protocol.
pub const PROTOCOL_HEADER: &str = "x-stream-protocol-version";

/// What ends a port-forward connection.
#[derive(Debug, thiserror::Error)]
pub enum PortForwardError {
    /// The client broke the protocol.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// The connection failed.
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// The connection's writer is gone.
    #[error("the connection is closed")]
    Closed,
}
