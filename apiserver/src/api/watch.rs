//! Watch: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`)
//! over a streamed response.
//!
//! Without a resourceVersion (or with "0") the watch starts with an `ADDED` event per current
//! object, then follows changes; with one, it resumes right after it. A revision older than the
//! change log holds ends the stream with an `ERROR` event carrying a 410 Expired Status. The
//! stream ends at `timeoutSeconds`, when the client goes away, or when the server shuts down.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Response, header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::catalog::storage_resource;
use super::request::accept;
use super::resource::{Call, select};
use super::selector::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::table::{table, wants_table};
use crate::storage::{EventType, StorageError};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

fn event(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// Counts a watch as open for as long as it lives.
struct WatchGuard(std::sync::Arc<ApiMetrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watch_delta(-1);
    }
}

type ApiMetrics = super::metrics::Metrics;

/// Serves a watch request.
pub async fn serve(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let labels = LabelSelector::parse(
        call.query
            .get("labelSelector")
            .map(String::as_str)
            .unwrap_or_default(),
    )
    .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(
        call.query
            .get("fieldSelector")
            .map(String::as_str)
            .unwrap_or_default(),
        call.kind.kind,
    )
    .map_err(ApiError::bad_request)?;
    let as_table = wants_table(&accept(&call.headers));
    let bookmarks = matches!(
        call.query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = call
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(Duration::from_secs);
    let requested = call
        .query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or_default();
    let (initial, start) = match requested {
        "" | "0" => {
            let (items, revision, _) = select(&call, 0, None).await?;
            (items, revision)
        }
        rv => (
            Vec::new(),
            rv.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    let kind = call.kind;
    let resource = storage_resource(kind);
    let namespace = call.path.namespace.clone();
    let mut watch = call.state.storage.watch(start);
    let shutdown = call.state.shutdown.clone();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let render = move |object: Value| -> Value {
        if as_table {
            let rv = object["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            table(kind.kind, &[object], &rv, None)
        } else {
            object
        }
    };
    let state_metrics = call.state.metrics_handle();
    state_metrics.watch_delta(1);
    tokio::spawn(async move {
        let _open = WatchGuard(state_metrics);
        for object in initial {
            if tx.send(event("ADDED", render(object))).await.is_err() {
                return;
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut bookmark = tokio::time::interval(BOOKMARK_EVERY);
        bookmark.tick().await;
        loop {
            let until_deadline = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
                _ = until_deadline => return,
                _ = bookmark.tick(), if bookmarks => {
                    let object = json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": {"resourceVersion": watch.revision().to_string()}});
                    if tx.send(event("BOOKMARK", object)).await.is_err() {
                        return;
                    }
                }
                next = watch.next() => {
                    let change = match next {
                        Ok(change) => change,
                        Err(StorageError::Expired { requested, oldest }) => {
                            let status = ApiError::expired(format!("too old resource version: {requested} ({oldest})")).status();
                            let _ = tx.send(event("ERROR", status)).await;
                            return;
                        }
                        Err(error) => {
                            let status = ApiError::unavailable(error.to_string()).status();
                            let _ = tx.send(event("ERROR", status)).await;
                            return;
                        }
                    };
                    if change.key.resource != resource
                        || namespace.as_ref().is_some_and(|ns| *ns != change.key.namespace)
                        || !labels.matches(&change.object["metadata"]["labels"])
                        || !fields.matches(&change.object)
                    {
                        continue;
                    }
                    let kind = match change.event {
                        EventType::Added => "ADDED",
                        EventType::Modified => "MODIFIED",
                        EventType::Deleted => "DELETED",
                    };
                    if tx.send(event(kind, render((*change.object).clone()))).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<Bytes, std::io::Error>(bytes), rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}
