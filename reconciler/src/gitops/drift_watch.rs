//! Drift noticed as it happens: a kube-rs watcher per kind the source applies (label
//! `ferry.dev/source=NAME`) compares each changed object with what the applied commit wants,
//! and asks the worker for a drift check when they differ (or a wanted object is deleted). The
//! source's own applies match what it wants, so they cause no checks.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_schema::kinds;
use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::drift;
use super::manifest::Manifest;
use super::manifests::{ObjectId, SOURCE_LABEL};
use super::worker::Trigger;

/// What the applied commit wants, by object (shared with the watchers).
pub type Wanted = Option<Arc<HashMap<ObjectId, Manifest>>>;

/// Watches one kind of the source's objects until `cancel` fires.
pub fn spawn(
    client: kube::Client,
    source: &str,
    api_version: &str,
    kind: &str,
    wanted: watch::Receiver<Wanted>,
    triggers: mpsc::Sender<Trigger>,
    cancel: CancellationToken,
) {
    let Some(info) = kinds::find(api_version, kind) else {
        return;
    };
    let resource = crate::kinds::api_resource(info);
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let config = watcher::Config::default().labels(&format!("{SOURCE_LABEL}={source}"));
    let api_version = api_version.to_owned();
    let kind = kind.to_owned();
    tokio::spawn(async move {
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => return,
                e = stream.next() => match e {
                    Some(Ok(e)) => e,
                    Some(Err(e)) => {
                        tracing::debug!(%kind, error = %e, "a drift watch failed; it resumes after a back-off");
                        continue;
                    }
                    None => return,
                },
            };
            let (object, deleted) = match event {
                Event::Apply(o) | Event::InitApply(o) => (o, false),
                Event::Delete(o) => (o, true),
                Event::Init | Event::InitDone => continue,
            };
            let id = ObjectId {
                api_version: api_version.clone(),
                kind: kind.clone(),
                namespace: object.metadata.namespace.clone().unwrap_or_default(),
                name: object.metadata.name.clone().unwrap_or_default(),
            };
            let drifted = {
                let wanted = wanted.borrow();
                let Some(want) = wanted.as_ref().and_then(|w| w.get(&id).cloned()) else {
                    continue;
                };
                deleted
                    || serde_json::to_value(&object)
                        .map(|live| !drift::differences(&want.value(), &live).is_empty())
                        .unwrap_or(false)
            };
            if drifted {
                // A full queue already holds a drift check or a sync.
                tracing::debug!(kind = %kind, "drift seen");
                if let Err(mpsc::error::TrySendError::Closed(_)) =
                    triggers.try_send(Trigger::DriftCheck)
                {
                    return;
                }
            }
        }
    });
}
