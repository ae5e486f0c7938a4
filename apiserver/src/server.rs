//! Serving the API over TCP, with shutdown as a protocol: when `cancel` fires the listener stops
//! accepting, open watches end, in-flight requests drain, and whatever is still running after
//! `drain` is dropped.

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{ApiState, router};

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Binds `addr` (port 0 picks a free port) and returns the listener and its address.
pub async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// Serves until `cancel` fires, then drains for at most `drain`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    cancel: CancellationToken,
    drain: Duration,
) -> Result<(), ServeError> {
    let app = router(state.clone());
    serve_app(listener, app, state, cancel, drain).await
}

/// [`serve`] with a router the caller built: the API's [`router`] merged with routes of its
/// own (e.g. `ferry up`'s webhooks).
pub async fn serve_app(
    listener: TcpListener,
    app: axum::Router,
    state: Arc<ApiState>,
    cancel: CancellationToken,
    drain: Duration,
) -> Result<(), ServeError> {
    let stop = cancel.clone();
    // Watch events are small writes a client never answers: without TCP_NODELAY, Nagle's
    // algorithm holds each one back until the client's delayed ACK (tens of ms per event).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "TCP_NODELAY could not be set on a connection");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop.cancelled().await;
        // Watches are long-lived: end them so the drain can finish.
        state.shutdown.cancel();
    });
    let mut server = std::pin::pin!(server.into_future());
    tokio::select! {
        result = &mut server => return result.map_err(ServeError::from),
        _ = cancel.cancelled() => {}
    }
    match tokio::time::timeout(drain, server).await {
        Ok(result) => result.map_err(ServeError::from),
        // Past the deadline: stop waiting for stragglers.
        Err(_) => Ok(()),
    }
}
