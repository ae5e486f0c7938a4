//! The Kubernetes REST API: one handler parses the path, then serves discovery, health,
//! OpenAPI, or a resource. Every error leaves as a `Status` object ([`status`]).

pub mod admission;
pub mod allocator;
pub mod apply;
pub mod by_namespace;
pub mod catalog;
pub mod crd;
pub mod defaults;
pub mod deletion;
pub mod discovery;
pub mod eviction;
pub mod limitrange;
pub mod limitrange_registry;
pub mod list;
pub mod metrics;
pub mod namespace;
pub mod nodeproxy;
pub mod nodeproxy_http;
pub mod openapi;
pub mod path;
pub mod podexec;
pub mod podlog;
pub mod priority;
pub mod protobuf;
pub mod quota;
pub mod quota_registry;
pub mod registry_rules;
pub mod request;
pub mod resource;
pub mod status;
pub mod subresource;
pub mod table;
pub mod transaction;
pub mod watch;
pub mod write;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::storage::Storage;
use admission::Admission;
use path::Target;
use request::{accept, json_response, query, typed_response};
use status::ApiError;

/// What every request shares.
pub struct ApiState {
    /// The storage.
    pub storage: Storage,
    /// Admission: defaulting and validation.
    pub admission: Admission,
    /// Fires when the server shuts down: open watches end.
    pub shutdown: CancellationToken,
    /// Where ClusterIPs and NodePorts come from.
    pub ranges: allocator::Ranges,
    /// Request and watch counters for `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
}

impl ApiState {
    /// A shared handle on the metrics, for tasks that outlive a request.
    pub fn metrics_handle(&self) -> Arc<metrics::Metrics> {
        self.metrics.clone()
    }
}

/// The API as a tower service (axum router): served over TCP by [`crate::server`], or called
/// in-process.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(state): State<Arc<ApiState>>, request: Request) -> Response<Body> {
    let span = tracing::debug_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        code = tracing::field::Empty,
    );
    handle_in(state, request).instrument(span).await
}

async fn handle_in(state: Arc<ApiState>, request: Request) -> Response<Body> {
    let started = std::time::Instant::now();
    let watching = request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match *request.method() {
        axum::http::Method::GET if watching => "watch",
        axum::http::Method::GET => "get",
        axum::http::Method::POST => "create",
        axum::http::Method::PUT => "update",
        axum::http::Method::PATCH => "patch",
        axum::http::Method::DELETE => "delete",
        _ => "other",
    };
    let response = match dispatch(&state, request).await {
        Ok(response) => response,
        Err(error) => {
            if error.code >= 500 {
                tracing::warn!(code = error.code, reason = error.reason, message = %error.message, "request failed");
            }
            error.into_response()
        }
    };
    tracing::Span::current().record("code", response.status().as_u16());
    tracing::debug!(
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "served"
    );
    state
        .metrics
        .request(verb, response.status().as_u16(), started.elapsed());
    response
}

async fn dispatch(state: &ApiState, request: Request) -> Result<Response<Body>, ApiError> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == transaction::PATH {
        if parts.method != axum::http::Method::POST {
            return Err(ApiError::method_not_allowed("transactions only take POST"));
        }
        let media = request::content_type(&parts.headers);
        return transaction::handle(state, &query(parts.uri.query()), &media, body).await;
    }
    let target = path::parse(parts.uri.path()).ok_or_else(ApiError::no_route)?;
    let accept_header = accept(&parts.headers);
    let ok = |value: serde_json::Value| Ok(json_response(StatusCode::OK, &value, &[]));
    match target {
        Target::Version => ok(discovery::version()),
        Target::Health if parts.uri.path().starts_with("/readyz") => {
            match state.storage.revision().await {
                Ok(_) => Ok(typed_response("text/plain", "ok".into())),
                Err(e) => Err(ApiError::unavailable(format!(
                    "storage is not reachable: {e}"
                ))),
            }
        }
        Target::Health => Ok(typed_response("text/plain", "ok".into())),
        Target::Metrics => {
            let revision = state.storage.revision().await.ok();
            Ok(typed_response(
                "text/plain; version=0.0.4",
                state.metrics.render(revision),
            ))
        }
        Target::CoreVersions | Target::Groups if discovery::wants_aggregated(&accept_header) => {
            let mut response = json_response(
                StatusCode::OK,
                &discovery::aggregated(target == Target::CoreVersions, state.admission.crds()),
                &[],
            );
            if let Ok(v) = axum::http::HeaderValue::from_str(discovery::AGGREGATED) {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, v);
            }
            Ok(response)
        }
        Target::CoreVersions => ok(discovery::core_versions()),
        Target::Groups => ok(discovery::group_list(state.admission.crds())),
        Target::Group(name) => discovery::group(&name, state.admission.crds())
            .map_or_else(|| Err(ApiError::no_route()), ok),
        Target::ResourceList { group, version } => {
            discovery::resource_list(&group, &version, state.admission.crds())
                .map_or_else(|| Err(ApiError::no_route()), ok)
        }
        Target::OpenApiV2 if accept_header.contains(openapi::v2proto::MEDIA_TYPE) => {
            let mut response =
                Response::new(Body::from(openapi::v2_protobuf(state.admission.crds())));
            response.headers_mut().insert(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static(openapi::v2proto::CONTENT_TYPE),
            );
            Ok(response)
        }
        Target::OpenApiV2 => ok(openapi::v2(state.admission.crds())),
        Target::OpenApiV3Root => ok(openapi::v3_root(state.admission.crds())),
        Target::OpenApiV3 { group, version } => {
            openapi::v3(&group, &version, state.admission.crds())
                .map_or_else(|| Err(ApiError::no_route()), ok)
        }
        Target::NodeProxy { node, path } => {
            nodeproxy_http::proxy(state, &node, &path, parts, body).await
        }
        Target::Resource(path) => {
            let kind = catalog::find(&path.group, &path.version, &path.resource)
                .or_else(|| {
                    state
                        .admission
                        .crds()
                        .find(&path.group, &path.version, &path.resource)
                        .map(|custom| custom.info)
                })
                .ok_or_else(ApiError::no_route)?;
            let pod = kind.group.is_empty() && kind.kind == "Pod";
            let streaming = match (&path.name, path.subresource.as_deref()) {
                (Some(name), Some(sub @ ("exec" | "attach" | "portforward"))) if pod => {
                    Some((name.clone(), sub.to_owned()))
                }
                _ => None,
            };
            let call = resource::Call {
                state,
                kind,
                path,
                query: query(parts.uri.query()),
                headers: parts.headers.clone(),
            };
            match streaming {
                Some((name, sub)) if sub == "exec" || sub == "attach" => {
                    let raw = parts.uri.query().unwrap_or_default().to_owned();
                    let request = Request::from_parts(parts, body);
                    podexec::stream(&call, &name, &raw, request, &sub).await
                }
                Some((name, _)) => {
                    let raw = parts.uri.query().unwrap_or_default().to_owned();
                    let request = Request::from_parts(parts, body);
                    podexec::port_forward(&call, &name, &raw, request).await
                }
                None => resource::handle(call, parts.method, body).await,
            }
        }
    }
}
