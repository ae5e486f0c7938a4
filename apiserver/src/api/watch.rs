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
use super::list::{partial_metadata, select, selectors};
use super::request::Shape;
use super::resource::Call;
use super::status::ApiError;
use super::table::table;
use crate::storage::{EventType, Notice, StorageError};

/// How often a watch that asked for bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

fn event(kind: &str, object: Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

/// The same line as [`event`] around an object already encoded as JSON text.
fn encoded_event(kind: &str, body: &str) -> Bytes {
    let mut line = String::with_capacity(body.len() + kind.len() + 23);
    line.push_str("{\"type\":\"");
    line.push_str(kind);
    line.push_str("\",\"object\":");
    line.push_str(body);
    line.push_str("}\n");
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
    let (labels, fields) = selectors(&call)?;
    let shape = Shape::of(&call.headers);
    let bookmarks = matches!(
        call.query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    // The streaming list (`sendInitialEvents=true`): the current objects as ADDED events, then
    // a bookmark that says the initial events are over.
    let initial_events = matches!(call.q("sendInitialEvents"), Some("true" | "1"));
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
            let selected = select(&call, 0, None).await?;
            (selected.items, selected.revision)
        }
        _ if initial_events => {
            let selected = select(&call, 0, None).await?;
            (selected.items, selected.revision)
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
    let custom = call.custom();
    // Built-in kinds as plain JSON go out as stored: each change's text, encoded once for
    // every watcher, instead of a copy of the object per watcher.
    let as_stored = custom.is_none() && shape == Shape::Object;
    let api_version = kind.api_version();
    let render = move |mut object: Value| -> Value {
        if custom.is_some()
            && let Some(map) = object.as_object_mut()
        {
            map.insert("apiVersion".into(), json!(api_version));
        }
        match shape {
            Shape::Table => {
                let rv = object["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                match &custom {
                    Some(custom) => super::crd::columns::table(custom, &[object], &rv, None),
                    None => table(kind.kind, &[object], &rv, None),
                }
            }
            Shape::Metadata => partial_metadata(&object),
            Shape::Object => object,
        }
    };
    let passes = move |o: &Value| labels.matches(&o["metadata"]["labels"]) && fields.matches(o);
    let state_metrics = call.state.metrics_handle();
    state_metrics.watch_delta(1);
    tokio::spawn(async move {
        let _open = WatchGuard(state_metrics);
        for object in initial {
            if tx.send(event("ADDED", render(object))).await.is_err() {
                return;
            }
        }
        if initial_events {
            let object = json!({"kind": kind.kind, "apiVersion": kind.api_version(), "metadata": {
                "resourceVersion": start.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"},
            }});
            if tx.send(event("BOOKMARK", object)).await.is_err() {
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
                            let error = ApiError::expired(format!("too old resource version: {requested} ({oldest})"));
                            end_with(&tx, error).await;
                            return;
                        }
                        Err(error) => {
                            tracing::warn!(%error, "a watch ends: the change log cannot be read");
                            end_with(&tx, ApiError::unavailable(error.to_string())).await;
                            return;
                        }
                    };
                    if change.key.resource != resource
                        || namespace.as_ref().is_some_and(|ns| *ns != change.key.namespace)
                    {
                        continue;
                    }
                    let Some((kind, sent)) = transition(&change, &passes) else {
                        continue;
                    };
                    let line = match sent {
                        Sent::Current if as_stored => encoded_event(kind, &change.body),
                        sent => match sent.object(&change) {
                            Ok(object) => event(kind, render(object)),
                            Err(error) => {
                                tracing::warn!(%error, "a watch ends: a changed object cannot be read");
                                end_with(&tx, ApiError::internal(error.to_string())).await;
                                return;
                            }
                        },
                    };
                    if tx.send(line).await.is_err() {
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

/// Sends the `ERROR` event that ends a watch, carrying `error` as a Status.
async fn end_with(tx: &mpsc::Sender<Bytes>, error: ApiError) {
    if tx.send(event("ERROR", error.status())).await.is_err() {
        tracing::debug!("the watcher left before its error");
    }
}

/// The object a watch event carries.
#[derive(Debug)]
pub enum Sent {
    /// The change's object as committed (its stored JSON text can be sent as it is).
    Current,
    /// The last passing state of an object that stopped passing, at the change's revision.
    Last(Value),
}

impl Sent {
    /// The object itself (the change's is parsed from its text).
    pub fn object(self, change: &Notice) -> Result<Value, StorageError> {
        match self {
            Sent::Current => change.object(),
            Sent::Last(object) => Ok(object),
        }
    }
}

/// What a watch with a selector sends for a change, as the kube-apiserver's watch cache does:
/// an object that starts passing is ADDED, one that stops passing is DELETED with its previous
/// (last passing) state at the change's resourceVersion, one that passes before and after is
/// MODIFIED (or DELETED when deleted), and nothing for one that passes neither.
///
/// The selectors read the change's selection (what of the object they can read); the previous
/// state is parsed only when it is sent.
pub fn transition(
    change: &Notice,
    passes: impl Fn(&Value) -> bool,
) -> Option<(&'static str, Sent)> {
    let now = change.event != EventType::Deleted && passes(&change.selection);
    let before = change.passed_before(&passes);
    match (before, now) {
        (false, true) => Some(("ADDED", Sent::Current)),
        (true, true) => Some(("MODIFIED", Sent::Current)),
        (true, false) => match (change.event, &change.previous) {
            (EventType::Modified, Some(previous)) => {
                let Ok(mut last) = serde_json::from_str::<Value>(&previous.body) else {
                    // Written by the writer from a parsed object: cannot fail to parse.
                    tracing::warn!(key = ?change.key, "a previous state could not be read; sent as deleted in its current state");
                    return Some(("DELETED", Sent::Current));
                };
                if let Some(meta) = last.get_mut("metadata").and_then(Value::as_object_mut) {
                    meta.insert("resourceVersion".into(), json!(change.revision.to_string()));
                }
                Some(("DELETED", Sent::Last(last)))
            }
            // A deletion: the object is its last state, at the deletion's revision already.
            _ => Some(("DELETED", Sent::Current)),
        },
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::storage::{Change, ObjectKey};

    fn change(event: EventType, labels: Value, previous: Option<Value>) -> Notice {
        let object = json!({"metadata": {"name": "p", "labels": labels, "resourceVersion": "9"}});
        Notice::of(&Change {
            revision: 9,
            event,
            key: ObjectKey::new("pods", "d", "p"),
            body: Arc::from(object.to_string()),
            object: Arc::new(object),
            previous: previous.map(|labels| {
                Arc::new(
                    json!({"metadata": {"name": "p", "labels": labels, "resourceVersion": "8"}}),
                )
            }),
        })
    }

    #[test]
    fn selector_transitions_are_those_of_the_watch_cache() {
        let web = |o: &Value| o["metadata"]["labels"]["app"] == "web";
        let kind = |c: &Notice| transition(c, web).map(|(k, _)| k);
        // Starts matching: ADDED.
        let c = change(
            EventType::Modified,
            json!({"app": "web"}),
            Some(json!({"app": "db"})),
        );
        assert_eq!(kind(&c), Some("ADDED"));
        // Stops matching: DELETED with the last matching state, at the change's revision.
        let c = change(
            EventType::Modified,
            json!({"app": "db"}),
            Some(json!({"app": "web"})),
        );
        let (k, sent) = transition(&c, web).expect("an event");
        let object = sent.object(&c).expect("parses");
        assert_eq!(k, "DELETED");
        assert_eq!(object["metadata"]["labels"]["app"], "web");
        assert_eq!(object["metadata"]["resourceVersion"], "9");
        // Matches before and after (nothing selection-relevant changed): MODIFIED.
        assert_eq!(
            kind(&change(EventType::Modified, json!({"app": "web"}), None)),
            Some("MODIFIED")
        );
        // Matches neither: nothing.
        assert_eq!(
            kind(&change(EventType::Modified, json!({"app": "db"}), None)),
            None
        );
        assert_eq!(
            kind(&change(EventType::Added, json!({"app": "web"}), None)),
            Some("ADDED")
        );
        assert_eq!(
            kind(&change(EventType::Added, json!({"app": "db"}), None)),
            None
        );
        assert_eq!(
            kind(&change(EventType::Deleted, json!({"app": "web"}), None)),
            Some("DELETED")
        );
        assert_eq!(
            kind(&change(EventType::Deleted, json!({"app": "db"}), None)),
            None
        );
    }

    #[test]
    fn an_encoded_event_is_the_event_of_the_object() {
        let c = change(EventType::Added, json!({"app": "web"}), None);
        let encoded = encoded_event("ADDED", &c.body);
        let made = event("ADDED", c.object().expect("parses"));
        let parse = |b: &Bytes| serde_json::from_slice::<Value>(b).expect("one JSON line");
        assert_eq!(parse(&encoded), parse(&made));
        assert!(encoded.ends_with(b"}\n"));
        assert_eq!(encoded.iter().filter(|b| **b == b'\n').count(), 1);
    }
}
