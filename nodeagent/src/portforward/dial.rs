//! Reaching a pod's port from the node, as a kubelet does for `kubectl port-forward`: a TCP
//! connection to `localhost:PORT` made inside the pod's network namespace (so a server bound
//! to the pod's loopback answers too), or on the node's own loopback for a pod in the node's
//! network. Dialling is an external effect behind [`PortDialer`]: the real one enters the
//! namespace on a thread of its own (`setns` changes only the calling thread; the socket keeps
//! the namespace it was made in), a test's fake dials where the test says.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::net::TcpStream;

use crate::runtime::PodPorts;

/// How long a connection to a pod's port may take.
const CONNECT: Duration = Duration::from_secs(5);

/// Opens connections to pods' ports.
pub trait PortDialer: Send + Sync + std::fmt::Debug + 'static {
    /// A connection to `port` of the pod reached through `at`; the error is the message a
    /// client is shown.
    fn dial(&self, at: &PodPorts, port: u16) -> BoxFuture<'static, Result<TcpStream, String>>;
}

/// The node's dialer: enters network namespaces (needs the privilege to, which a node agent
/// that made them has).
#[derive(Debug, Clone, Copy, Default)]
pub struct NetnsDialer;

impl PortDialer for NetnsDialer {
    fn dial(&self, at: &PodPorts, port: u16) -> BoxFuture<'static, Result<TcpStream, String>> {
        let at = at.clone();
        Box::pin(async move {
            let std_stream = match at {
                PodPorts::Host => tokio::task::spawn_blocking(move || loopback(port, ""))
                    .await
                    .map_err(|e| format!("the dial task failed: {e}"))??,
                PodPorts::Namespace(path) => {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    let thread = std::thread::Builder::new()
                        .name("ferry-portforward-dial".into())
                        .spawn(move || {
                            if tx.send(in_namespace(&path, port)).is_err() {
                                tracing::debug!(
                                    "a port-forward dial finished after its caller left"
                                );
                            }
                        });
                    if let Err(e) = thread {
                        return Err(format!("cannot start a thread to dial from: {e}"));
                    }
                    rx.await
                        .map_err(|_| "the dialling thread ended without an answer".to_owned())??
                }
            };
            std_stream
                .set_nonblocking(true)
                .map_err(|e| format!("cannot use the connection: {e}"))?;
            if let Err(e) = std_stream.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY could not be set towards a pod");
            }
            TcpStream::from_std(std_stream).map_err(|e| format!("cannot use the connection: {e}"))
        })
    }
}

/// Connects to `localhost:port`, IPv4 first, then IPv6 (as a kubelet does); `place` says
/// where, for the error.
fn loopback(port: u16, place: &str) -> Result<std::net::TcpStream, String> {
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    match std::net::TcpStream::connect_timeout(&v4, CONNECT) {
        Ok(s) => Ok(s),
        Err(e4) => std::net::TcpStream::connect_timeout(&v6, CONNECT).map_err(|e6| {
            format!("failed to connect to localhost:{port}{place}, IPv4: dial tcp4 {v4}: {e4} IPv6 dial tcp6 {v6}: {e6}")
        }),
    }
}

/// Runs on a thread of its own, which it moves into the namespace at `path` for good.
fn in_namespace(path: &PathBuf, port: u16) -> Result<std::net::TcpStream, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot open network namespace {}: {e}", path.display()))?;
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .map_err(|e| format!("cannot enter network namespace {}: {e}", path.display()))?;
    loopback(port, &format!(" inside namespace \"{}\"", path.display()))
}

/// A dialer for tests: every port is reached at `127.0.0.1:<port>` on the host, whatever
/// the pod.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackDialer;

impl PortDialer for LoopbackDialer {
    fn dial(&self, _at: &PodPorts, port: u16) -> BoxFuture<'static, Result<TcpStream, String>> {
        Box::pin(async move {
            tokio::time::timeout(CONNECT, TcpStream::connect((Ipv4Addr::LOCALHOST, port)))
                .await
                .map_err(|_| format!("dial tcp4 127.0.0.1:{port}: timed out"))?
                .map_err(|e| format!("dial tcp4 127.0.0.1:{port}: {e}"))
        })
    }
}
