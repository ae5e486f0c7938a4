//! The GitOps controller: watches `Source` objects (kube-rs watcher), runs one
//! [`SourceWorker`] per source, feeds it triggers (ref and directory watches through notify,
//! `ferry sync` and `ferry rollback` requests left as annotations on the Source, webhooks), and
//! stops it when the Source goes or its spec changes (a new worker takes over).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_schema::ferry::{SourceKind, SourceSpec};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use notify::Watcher;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::checkout::{Checkout, CheckoutError};
use super::cluster::{Cluster, FERRY_NAMESPACE};
use super::directory::DirectoryCheckout;
use super::durable;
use super::git::{Follow, GitCheckout};
use super::remote::RemoteCheckout;
use super::worker::{Settings, SourceWorker, Trigger};

/// The annotation `ferry sync` leaves on a Source: `{"id": ..., "by": ...}`.
pub const SYNC_REQUEST: &str = "ferry.dev/sync-request";
/// The annotation `ferry rollback` leaves on a Source:
/// `{"id": ..., "commit": ..., "reason": ..., "by": ...}`.
pub const ROLLBACK_REQUEST: &str = "ferry.dev/rollback-request";

/// Whether a source URL names a remote repository (fetched into a mirror) rather than a path.
pub fn is_remote(url: &str) -> bool {
    ["https://", "http://", "ssh://", "git://"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// Opens the checkout a spec describes; a remote repository of source `name` is mirrored
/// under `mirrors`.
pub fn open_checkout(
    spec: &SourceSpec,
    name: &str,
    mirrors: &Path,
) -> Result<Arc<dyn Checkout>, CheckoutError> {
    let url = spec.url.strip_prefix("file://").unwrap_or(&spec.url);
    let subpath = spec.path.clone().unwrap_or_default();
    let follow = match (&spec.commit, &spec.tag, &spec.branch) {
        (Some(c), _, _) => Follow::Commit(c.clone()),
        (None, Some(t), _) => Follow::Tag(t.clone()),
        (None, None, Some(b)) => Follow::Branch(b.clone()),
        _ => Follow::Head,
    };
    if is_remote(url) {
        if spec.kind == SourceKind::Directory {
            return Err(CheckoutError::Open {
                path: url.to_owned(),
                message: "a directory source must be a local path".into(),
            });
        }
        let mirror = mirrors.join(format!("{name}.git"));
        return Ok(Arc::new(RemoteCheckout::new(
            url, &mirror, follow, &subpath,
        )));
    }
    match spec.kind {
        SourceKind::Directory => {
            let root = Path::new(url).join(&subpath);
            Ok(Arc::new(DirectoryCheckout::open(&root)?))
        }
        SourceKind::Git => Ok(Arc::new(GitCheckout::open(
            Path::new(url),
            follow,
            &subpath,
        )?)),
    }
}

/// A running worker.
struct Running {
    spec: Value,
    triggers: mpsc::Sender<Trigger>,
    cancel: CancellationToken,
    _watcher: Option<notify::RecommendedWatcher>,
}

/// Watches the paths of a checkout; every change signals the worker to look at the head.
fn watch(
    paths: &[PathBuf],
    changed: std::sync::Arc<tokio::sync::Notify>,
    git: bool,
) -> Option<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the source (ferry's own reads included) is not a change.
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            changed.notify_one();
        }
    })
    .ok()?;
    for path in paths {
        // The refs, HEAD and packed-refs of a repository (not the object store); all of a
        // directory. Where watching fails, polling still finds changes.
        let watches = if git {
            vec![
                (path.clone(), notify::RecursiveMode::NonRecursive),
                (path.join("refs"), notify::RecursiveMode::Recursive),
            ]
        } else {
            vec![(path.clone(), notify::RecursiveMode::Recursive)]
        };
        for (at, mode) in watches {
            if let Err(error) = watcher.watch(&at, mode) {
                tracing::warn!(path = %at.display(), %error, "cannot watch; changes are found by polling");
            }
        }
    }
    Some(watcher)
}

/// Hands a trigger to a source's worker without blocking: when its queue is full the trigger
/// waits its turn on a task of its own (a user's sync or rollback request is never dropped).
fn deliver(triggers: &mpsc::Sender<Trigger>, trigger: Trigger, what: &'static str) {
    match triggers.try_send(trigger) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(trigger)) => {
            let triggers = triggers.clone();
            tokio::spawn(async move {
                if triggers.send(trigger).await.is_err() {
                    tracing::warn!(
                        trigger = what,
                        "the source's worker stopped before taking it"
                    );
                }
            });
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::warn!(trigger = what, "the source's worker has stopped");
        }
    }
}

/// The controller of every Source.
#[derive(Debug, Clone)]
pub struct Controller {
    cluster: Cluster,
    settings: Settings,
    webhooks: Webhooks,
}

/// Senders for webhook-triggered fetches, by source name.
#[derive(Debug, Clone, Default)]
pub struct Webhooks(Arc<std::sync::Mutex<HashMap<String, mpsc::Sender<Trigger>>>>);

impl Webhooks {
    /// Asks source `name` to fetch now; false when there is no such source.
    pub fn trigger(&self, name: &str) -> bool {
        let sender = self.0.lock().ok().and_then(|m| m.get(name).cloned());
        match sender {
            Some(s) => {
                deliver(&s, Trigger::Poll { webhook: true }, "webhook fetch");
                true
            }
            None => false,
        }
    }

    fn set(&self, name: &str, sender: Option<mpsc::Sender<Trigger>>) {
        if let Ok(mut m) = self.0.lock() {
            match sender {
                Some(s) => m.insert(name.to_owned(), s),
                None => m.remove(name),
            };
        }
    }
}

impl Controller {
    /// A controller over `cluster`.
    pub fn new(cluster: Cluster, settings: Settings) -> Controller {
        Controller {
            cluster,
            settings,
            webhooks: Webhooks::default(),
        }
    }

    /// The handle webhooks use to trigger fetches.
    pub fn webhooks(&self) -> Webhooks {
        self.webhooks.clone()
    }

    /// Runs until `cancel` fires; then stops every worker.
    pub async fn run(self, cancel: CancellationToken) {
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("ferry.dev", "v1", "Source"),
            "sources",
        );
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.cluster.client().clone(), FERRY_NAMESPACE, &resource);
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut running: HashMap<String, Running> = HashMap::new();
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => break,
                e = stream.next() => match e { Some(e) => e, None => break },
            };
            match event {
                Ok(Event::Apply(o) | Event::InitApply(o)) => {
                    if let Ok(value) = serde_json::to_value(&o) {
                        self.upsert(&mut running, &value);
                    }
                }
                Ok(Event::Delete(o)) => {
                    if let Some(name) = o.metadata.name.as_deref()
                        && let Some(r) = running.remove(name)
                    {
                        r.cancel.cancel();
                        self.webhooks.set(name, None);
                    }
                }
                Ok(Event::Init | Event::InitDone) | Err(_) => {}
            }
        }
        for (_, r) in running {
            r.cancel.cancel();
        }
    }

    fn upsert(&self, running: &mut HashMap<String, Running>, source: &Value) {
        let Some(name) = source["metadata"]["name"].as_str().map(str::to_owned) else {
            return;
        };
        let spec_value = source["spec"].clone();
        let needs_start = running.get(&name).is_none_or(|r| r.spec != spec_value);
        if needs_start {
            if let Some(old) = running.remove(&name) {
                old.cancel.cancel();
            }
            match self.start(&name, &spec_value) {
                Ok(r) => {
                    self.webhooks.set(&name, Some(r.triggers.clone()));
                    running.insert(name.clone(), r);
                }
                Err(message) => {
                    let cluster = self.cluster.clone();
                    let name = name.clone();
                    tracing::warn!(source = %name, %message, "the source cannot be followed");
                    tokio::spawn(async move {
                        durable::once(
                            "source status",
                            cluster.patch_source(
                                &name,
                                &json!({"status": {"message": message}}),
                                true,
                            ),
                        )
                        .await;
                    });
                    return;
                }
            }
        }
        let Some(r) = running.get(&name) else { return };
        let annotations = &source["metadata"]["annotations"];
        if let Some(request) = annotations[SYNC_REQUEST]
            .as_str()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            && let Some(id) = request["id"].as_str()
        {
            let sync = Trigger::Sync {
                request: id.to_owned(),
                by: request["by"].as_str().unwrap_or("unknown").to_owned(),
            };
            deliver(&r.triggers, sync, "sync request");
        }
        if let Some(request) = annotations[ROLLBACK_REQUEST]
            .as_str()
            .and_then(|t| serde_json::from_str::<Value>(t).ok())
            && let (Some(id), Some(commit)) = (request["id"].as_str(), request["commit"].as_str())
        {
            let rollback = Trigger::Rollback {
                request: id.to_owned(),
                commit: commit.to_owned(),
                reason: request["reason"].as_str().unwrap_or_default().to_owned(),
                by: request["by"].as_str().unwrap_or("unknown").to_owned(),
            };
            deliver(&r.triggers, rollback, "rollback request");
        }
    }

    fn start(&self, name: &str, spec_value: &Value) -> Result<Running, String> {
        let spec: SourceSpec = serde_json::from_value(spec_value.clone())
            .map_err(|e| format!("the Source's spec is invalid: {e}"))?;
        let checkout =
            open_checkout(&spec, name, &self.settings.mirrors).map_err(|e| e.to_string())?;
        let (tx, rx) = mpsc::channel(16);
        let remote = checkout.is_remote();
        let paths = checkout.watch_paths();
        let git = spec.kind == SourceKind::Git;
        let cancel = CancellationToken::new();
        let worker = SourceWorker::new(
            name.to_owned(),
            spec,
            self.cluster.clone(),
            checkout,
            self.settings.clone(),
            tx.clone(),
        );
        let watcher = if remote {
            None
        } else {
            watch(&paths, worker.change_signal(), git)
        };
        tokio::spawn(worker.run(rx, cancel.clone()));
        Ok(Running {
            spec: spec_value.clone(),
            triggers: tx,
            cancel,
            _watcher: watcher,
        })
    }
}
