//! The node agent's HTTP endpoint, on the port a node reports as its kubelet endpoint:
//! `healthz`, the kubelet's `containerLogs/{namespace}/{pod}/{container}` read API (the options of
//! [`crate::logs`]), which the apiserver's `pods/log` proxies to, and
//! `exec/{namespace}/{pod}/{container}` and `attach/...` over WebSocket
//! ([`crate::remotecommand`]), which its `pods/exec` and `pods/attach` proxy to, and
//! `portForward/{namespace}/{pod}` ([`crate::portforward`], SPDY/3.1 by upgrade or through a
//! WebSocket), which its `pods/portforward` proxies to. One endpoint serves every node of the
//! process.

use axum::serve::ListenerExt;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::logs::{self, LogError, LogFiles, LogOptions, Writing};
use crate::portforward::{self, NetnsDialer, PortDialer};
use crate::remotecommand::{ExecQuery, PROTOCOLS};
use crate::runtime::{Runtime, RuntimeError};

/// What the endpoint reads from.
#[derive(Clone)]
pub struct Kubelet {
    files: LogFiles,
    runtimes: Vec<Arc<dyn Runtime>>,
    dialer: Arc<dyn PortDialer>,
    shutdown: CancellationToken,
}

impl Kubelet {
    /// An endpoint over the nodes' log roots and runtimes.
    pub fn new(files: LogFiles, runtimes: Vec<Arc<dyn Runtime>>) -> Kubelet {
        Kubelet {
            files,
            runtimes,
            dialer: Arc::new(NetnsDialer),
            shutdown: CancellationToken::new(),
        }
    }

    /// The same endpoint reaching pods' ports through `dialer` (tests).
    pub fn with_dialer(mut self, dialer: Arc<dyn PortDialer>) -> Kubelet {
        self.dialer = dialer;
        self
    }

    /// The routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/containerLogs/{namespace}/{pod}/{container}",
                get(container_logs),
            )
            .route("/exec/{namespace}/{pod}/{container}", get(exec))
            .route("/attach/{namespace}/{pod}/{container}", get(attach))
            .route(
                "/portForward/{namespace}/{pod}",
                get(port_forward).post(port_forward),
            )
            .with_state(self)
    }
}

fn plain(code: StatusCode, message: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], message).into_response()
}

fn refusal(error: LogError) -> Response {
    let code = match &error {
        LogError::NotFound(_) => StatusCode::NOT_FOUND,
        LogError::NotStarted(_) | LogError::BadRequest(_) => StatusCode::BAD_REQUEST,
        LogError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    };
    plain(code, error.to_string())
}

async fn container_logs(
    State(kubelet): State<Kubelet>,
    Path((namespace, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Response {
    let query: HashMap<String, String> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let options = match LogOptions::from_query(&query) {
        Ok(o) => o,
        Err(e) => return refusal(e),
    };
    let path = match kubelet
        .files
        .find(&namespace, &pod, &container, options.previous)
    {
        Ok(p) => p,
        Err(e) => return refusal(e),
    };
    tracing::debug!(%namespace, %pod, %container, follow = options.follow, "serving a container log");
    let runtimes = kubelet.runtimes.clone();
    let writing: Writing =
        Arc::new(move |p: &std::path::Path| runtimes.iter().any(|r| r.writes_log(p)));
    let body = logs::stream(path, options, writing).map(|chunk| {
        chunk.map_err(|e| {
            tracing::warn!(error = %e, "a container log stream failed");
            std::io::Error::other(e.to_string())
        })
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from_stream(body))
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn exec(
    State(kubelet): State<Kubelet>,
    Path(target): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    stream(kubelet, target, query, upgrade, Verb::Exec).await
}

async fn attach(
    State(kubelet): State<Kubelet>,
    Path(target): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    stream(kubelet, target, query, upgrade, Verb::Attach).await
}

/// What a streaming request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    /// Runs a command in the container.
    Exec,
    /// Joins the container's own streams.
    Attach,
}

/// Serves exec or attach over the WebSocket remote-command protocol.
async fn stream(
    kubelet: Kubelet,
    (namespace, pod, container): (String, String, String),
    query: Option<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    verb: Verb,
) -> Response {
    let query = query.unwrap_or_default();
    let parsed = match verb {
        Verb::Exec => ExecQuery::parse(&query),
        Verb::Attach => ExecQuery::parse_attach(&query),
    };
    let query = match parsed {
        Ok(q) => q,
        Err(e) => return plain(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!(
                    "{verb:?} is served over WebSocket ({}): {e}",
                    PROTOCOLS.join(", ")
                )
                .to_lowercase(),
            );
        }
    };
    let found = kubelet.runtimes.iter().find_map(|r| {
        r.find_container(&namespace, &pod, &container)
            .map(|id| (r.clone(), id))
    });
    let Some((runtime, id)) = found else {
        return plain(
            StatusCode::NOT_FOUND,
            format!("container not found (\"{container}\")"),
        );
    };
    tracing::info!(%namespace, %pod, %container, ?verb, command = ?query.request.command, tty = query.request.tty, "stream");
    let session = match verb {
        Verb::Exec => runtime.exec(&id, query.request.clone()).await,
        Verb::Attach => runtime.attach(&id, query.request.clone()).await,
    }
    .map_err(|e| e.to_string());
    upgrade
        .protocols(PROTOCOLS)
        .on_upgrade(move |socket| crate::remotecommand::serve(socket, query, session))
}

/// Port-forward: SPDY/3.1 by an HTTP upgrade or tunnelled through a WebSocket (kubectl), or
/// the WebSocket channel protocol (the kube crate, the Python client).
async fn port_forward(
    State(kubelet): State<Kubelet>,
    Path((namespace, pod)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    request: Request<Body>,
) -> Response {
    let mut refusals = Vec::new();
    let mut ports = None;
    for runtime in &kubelet.runtimes {
        match runtime.pod_ports(&namespace, &pod).await {
            Ok(p) => {
                ports = Some(p);
                break;
            }
            Err(e) => refusals.push(e),
        }
    }
    let Some(ports) = ports else {
        let why = refusals
            .iter()
            .find(|e| !matches!(e, RuntimeError::NotFound(_)))
            .map_or_else(
                || format!("pod {namespace}/{pod} not found"),
                ToString::to_string,
            );
        let code = if why.ends_with("not found") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return plain(code, why);
    };
    let target = portforward::Target {
        pod: format!("{namespace}/{pod}"),
        ports,
    };
    let (dialer, shutdown) = (kubelet.dialer.clone(), kubelet.shutdown.clone());
    if let Ok(upgrade) = upgrade {
        let offered = [portforward::TUNNEL_PROTOCOL]
            .into_iter()
            .chain(portforward::channels::PROTOCOLS.iter().copied());
        let upgrade = upgrade.protocols(offered);
        let tunnel = upgrade
            .selected_protocol()
            .is_some_and(|p| p == portforward::TUNNEL_PROTOCOL);
        if tunnel {
            tracing::info!(pod = %target.pod, "port-forward: SPDY through a WebSocket");
            return upgrade.on_upgrade(move |socket| async move {
                let io = portforward::tunnel::bytes_of(socket);
                finish(portforward::serve(io, target, dialer, shutdown).await);
            });
        }
        let ports = match portforward::channels::ports_of(query.as_deref().unwrap_or_default()) {
            Ok(p) => p,
            Err(e) => return plain(StatusCode::BAD_REQUEST, e),
        };
        tracing::info!(pod = %target.pod, ?ports, "port-forward: WebSocket channels");
        return upgrade.on_upgrade(move |socket| {
            portforward::channels::serve(socket, ports, target, dialer, shutdown)
        });
    }
    let headers = request.headers();
    let spdy = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(portforward::SPDY));
    if !spdy {
        return plain(
            StatusCode::BAD_REQUEST,
            format!(
                "port-forward is served over an upgrade to {} or a WebSocket ({})",
                portforward::SPDY,
                portforward::TUNNEL_PROTOCOL
            ),
        );
    }
    let offered: Vec<String> = headers
        .get_all(portforward::PROTOCOL_HEADER)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_owned())
        .collect();
    if !offered.is_empty() && !offered.iter().any(|p| p == portforward::PROTOCOL) {
        return plain(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{}\"]",
                portforward::PROTOCOL
            ),
        );
    }
    tracing::info!(pod = %target.pod, "port-forward over SPDY");
    let on_upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                finish(portforward::serve(io, target, dialer, shutdown).await);
            }
            Err(e) => tracing::warn!(error = %e, "a port-forward upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, portforward::SPDY)
        .header(portforward::PROTOCOL_HEADER, portforward::PROTOCOL)
        .body(Body::empty())
        .unwrap_or_else(|e| plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn finish(served: Result<(), portforward::PortForwardError>) {
    match served {
        Ok(()) => tracing::debug!("a port-forward connection ended"),
        Err(e) => tracing::info!(error = %e, "a port-forward connection ended with an error"),
    }
}

/// Binds the endpoint's listener.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    mut kubelet: Kubelet,
    cancel: CancellationToken,
) {
    kubelet.shutdown = cancel.clone();
    let app = kubelet.router();
    // Log lines and exec frames are small writes: sent at once, not held back by Nagle.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "TCP_NODELAY could not be set on a connection");
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the node endpoint stopped");
    }
}
