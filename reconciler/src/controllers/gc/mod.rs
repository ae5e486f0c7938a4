//! The garbage collector (kube-controller-manager's): deletes objects whose owners are gone
//! (`kubectl delete --cascade=background`, the default), finishes foreground deletions
//! (`--cascade=foreground`: dependents first, the owner last) and orphaning ones
//! (`--cascade=orphan`: dependents keep running without the reference).
//!
//! It watches the metadata of every kind the apiserver serves that can be listed, watched
//! and deleted (Events aside, as Kubernetes ignores them), found by discovery and looked for
//! again every 30 s so that new CRDs are covered; it acts only once every watch has listed.

mod collect;
pub mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc;
use kube::api::{Api, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::discovery::{ApiResource, Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use self::collect::{Collector, Kind};
use self::graph::{Graph, Node, Work};
use super::error::Backoff;

/// How many pieces of work run at once.
const WORKERS: usize = 16;
/// How often discovery is run again.
const REDISCOVERY: Duration = Duration::from_secs(30);

/// Hands work to the workers, once per item while it waits.
#[derive(Clone)]
struct Queue {
    tx: mpsc::UnboundedSender<Work>,
    waiting: Arc<Mutex<HashSet<Work>>>,
}

impl Queue {
    fn push(&self, work: Vec<Work>) {
        for w in work {
            let fresh = self
                .waiting
                .lock()
                .map(|mut s| s.insert(w.clone()))
                .unwrap_or(true);
            if fresh && self.tx.unbounded_send(w).is_err() {
                return;
            }
        }
    }

    fn take(&self, work: &Work) {
        if let Ok(mut s) = self.waiting.lock() {
            s.remove(work);
        }
    }
}

fn node_of(
    resource: &Arc<ApiResource>,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Node {
    Node {
        resource: resource.clone(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
        resource_version: meta.resource_version.clone(),
        owners: meta.owner_references.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    }
}

/// Watches one resource's metadata into the graph until `cancel`; says on `synced` when its
/// first list is in. A re-list forgets objects deleted while the watch was down.
async fn follow(
    client: kube::Client,
    resource: Arc<ApiResource>,
    graph: Arc<Mutex<Graph>>,
    queue: Queue,
    synced: mpsc::UnboundedSender<()>,
    cancel: CancellationToken,
) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(client, resource.as_ref());
    let events = watcher(api, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events.take_until(cancel.cancelled_owned()));
    let mut listing: Option<HashSet<String>> = None;
    let mut first = true;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(resource = %resource.plural, error = %e, "metadata watch failed; retrying");
                continue;
            }
        };
        let Ok(mut g) = graph.lock() else {
            tracing::error!("garbage collector graph poisoned");
            return;
        };
        match event {
            watcher::Event::Init => listing = Some(HashSet::new()),
            watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                if let Some(uid) = o.metadata.uid.clone() {
                    if let Some(l) = listing.as_mut() {
                        l.insert(uid.clone());
                    }
                    queue.push(g.upsert(uid, node_of(&resource, &o.metadata)));
                }
            }
            watcher::Event::Delete(o) => {
                if let Some(uid) = o.metadata.uid.as_deref() {
                    queue.push(g.remove(uid));
                }
            }
            watcher::Event::InitDone => {
                if let Some(seen) = listing.take() {
                    for uid in g.uids_of(&resource.group, &resource.plural) {
                        if !seen.contains(&uid) {
                            queue.push(g.remove(&uid));
                        }
                    }
                }
                if first {
                    first = false;
                    if synced.unbounded_send(()).is_err() {
                        tracing::debug!("nobody waits for the garbage collector's sync");
                    }
                }
            }
        }
    }
}

/// Runs the garbage collector until `cancel`.
pub async fn run(client: kube::Client, cancel: CancellationToken) {
    let graph = Arc::new(Mutex::new(Graph::default()));
    let kinds: Arc<Mutex<HashMap<(String, String), Kind>>> = Arc::default();
    let (tx, rx) = mpsc::unbounded();
    let queue = Queue {
        tx,
        waiting: Arc::default(),
    };
    let (ready_tx, ready_rx) = watch::channel(false);
    let discovery = discover(
        client.clone(),
        graph.clone(),
        kinds.clone(),
        queue.clone(),
        ready_tx,
        cancel.clone(),
    );
    let collector = Arc::new(Collector {
        client,
        graph,
        kinds,
    });
    let backoff = Arc::new(Backoff::default());
    let workers = rx.take_until(cancel.clone().cancelled_owned()).for_each_concurrent(WORKERS, |work| {
        let (collector, queue, backoff, mut ready) = (collector.clone(), queue.clone(), backoff.clone(), ready_rx.clone());
        async move {
            if ready.wait_for(|r| *r).await.is_err() {
                return;
            }
            queue.take(&work);
            let key = format!("{work:?}");
            match collector.run(&work).await {
                Ok(()) => backoff.succeeded(&key),
                Err(e) => {
                    let delay = backoff.failed(&key);
                    tracing::warn!(?work, error = %e, retry_in = ?delay, "garbage collection failed");
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        queue.push(vec![work]);
                    });
                }
            }
        }
    });
    tokio::join!(discovery, workers);
}

/// Finds the kinds to watch, now and every 30 s, and starts a watch for each new one; sets
/// `ready` once the first round's watches have all listed.
async fn discover(
    client: kube::Client,
    graph: Arc<Mutex<Graph>>,
    kinds: Arc<Mutex<HashMap<(String, String), Kind>>>,
    queue: Queue,
    ready: watch::Sender<bool>,
    cancel: CancellationToken,
) {
    let mut watched: HashSet<(String, String)> = HashSet::new();
    let (synced_tx, mut synced_rx) = mpsc::unbounded();
    let mut waiting_for: Option<usize> = None;
    loop {
        match Discovery::new(client.clone()).run().await {
            Ok(found) => {
                let mut started = 0;
                for group in found.groups() {
                    for version in group.versions() {
                        for (resource, caps) in group.versioned_resources(version) {
                            if let Ok(mut k) = kinds.lock() {
                                k.insert(
                                    (resource.api_version.clone(), resource.kind.clone()),
                                    Kind {
                                        resource: Arc::new(resource.clone()),
                                        namespaced: caps.scope == Scope::Namespaced,
                                    },
                                );
                            }
                        }
                    }
                    for (resource, caps) in group.recommended_resources() {
                        let key = (resource.group.clone(), resource.plural.clone());
                        let usable = [verbs::LIST, verbs::WATCH, verbs::DELETE]
                            .iter()
                            .all(|v| caps.supports_operation(v));
                        if !usable || resource.plural == "events" || watched.contains(&key) {
                            continue;
                        }
                        watched.insert(key);
                        started += 1;
                        tokio::spawn(follow(
                            client.clone(),
                            Arc::new(resource),
                            graph.clone(),
                            queue.clone(),
                            synced_tx.clone(),
                            cancel.clone(),
                        ));
                    }
                }
                if waiting_for.is_none() {
                    waiting_for = Some(started);
                    tracing::info!(resources = started, "garbage collector watching");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery failed; the garbage collector tries again")
            }
        }
        if let Some(n) = waiting_for.filter(|_| !*ready.borrow()) {
            for _ in 0..n {
                tokio::select! {
                    _ = synced_rx.next() => {}
                    () = cancel.cancelled() => return,
                }
            }
            let objects = graph.lock().map(|g| g.len()).unwrap_or(0);
            tracing::info!(objects, "garbage collector synced");
            if ready.send(true).is_err() {
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(REDISCOVERY) => {}
            () = cancel.cancelled() => return,
        }
    }
}
