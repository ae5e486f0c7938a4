//! Watches of the ConfigMaps and Secrets that running pods mount, the kubelet's `Watch`
//! change-detection strategy: one watch per object per node agent (a field selector on its
//! name), shared by every pod that mounts it. A change of the object wakes the workers of
//! those pods, which bring their volume files up to date at once; the periodic refresh stays
//! as the safety net. A [`Subscription`] is one pod's interest: the watch ends with the last.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1 as core;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;

use super::sources::SourceKind;

/// One watched object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: SourceKind,
    namespace: String,
    name: String,
}

/// A watch and the pods that follow it.
#[derive(Debug)]
struct Shared {
    /// Counts the changes seen (after the first listing).
    changes: watch::Sender<u64>,
    users: usize,
    task: tokio::task::AbortHandle,
}

/// The node agent's watches of mounted ConfigMaps and Secrets.
pub struct SourceWatches {
    client: kube::Client,
    entries: Mutex<HashMap<Key, Shared>>,
}

impl std::fmt::Debug for SourceWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceWatches")
            .field("watched", &self.watched())
            .finish_non_exhaustive()
    }
}

/// One pod's interest in one object: its changes, as a counter that grows.
#[derive(Debug)]
pub struct Subscription {
    key: Key,
    changes: watch::Receiver<u64>,
    owner: Arc<SourceWatches>,
}

impl Subscription {
    /// Resolves at the object's next change.
    pub async fn changed(&mut self) {
        if self.changes.changed().await.is_err() {
            // The watch is gone (never while a subscription holds it): nothing more comes.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut entries = self
            .owner
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let last = entries.get_mut(&self.key).is_some_and(|shared| {
            shared.users = shared.users.saturating_sub(1);
            shared.users == 0
        });
        if last && let Some(shared) = entries.remove(&self.key) {
            shared.task.abort();
            tracing::debug!(kind = self.key.kind.word(), namespace = %self.key.namespace, name = %self.key.name, "no pod mounts it any more: its watch ends");
        }
    }
}

/// What a watch reports, whatever the kind.
enum Seen {
    /// The listing (or a new one after the watch restarted) is complete.
    Listed,
    /// The object changed or went.
    Changed,
    /// Part of a listing.
    Listing,
}

fn stream_of<K>(api: Api<K>, name: &str) -> BoxStream<'static, Seen>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    watcher::watcher(api, config)
        .default_backoff()
        .filter_map(|event| async move {
            match event {
                Ok(Event::Apply(_) | Event::Delete(_)) => Some(Seen::Changed),
                Ok(Event::Init | Event::InitApply(_)) => Some(Seen::Listing),
                Ok(Event::InitDone) => Some(Seen::Listed),
                Err(e) => {
                    tracing::debug!(error = %e, "a ConfigMap or Secret watch failed; it restarts after a back-off");
                    None
                }
            }
        })
        .boxed()
}

impl SourceWatches {
    /// Watches made with `client`.
    pub fn new(client: kube::Client) -> Arc<SourceWatches> {
        Arc::new(SourceWatches {
            client,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// Follows the changes of `kind` `namespace/name`.
    pub fn subscribe(
        self: &Arc<Self>,
        kind: SourceKind,
        namespace: &str,
        name: &str,
    ) -> Subscription {
        let key = Key {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let shared = entries.entry(key.clone()).or_insert_with(|| {
            let (changes, _) = watch::channel(0);
            let stream = match kind {
                SourceKind::ConfigMap => stream_of(
                    Api::<core::ConfigMap>::namespaced(self.client.clone(), namespace),
                    name,
                ),
                SourceKind::Secret => stream_of(
                    Api::<core::Secret>::namespaced(self.client.clone(), namespace),
                    name,
                ),
            };
            let task = tokio::spawn(follow(stream, changes.clone())).abort_handle();
            tracing::debug!(kind = kind.word(), %namespace, %name, "watching a mounted object");
            Shared {
                changes,
                users: 0,
                task,
            }
        });
        shared.users += 1;
        Subscription {
            key,
            changes: shared.changes.subscribe(),
            owner: self.clone(),
        }
    }

    /// How many objects are watched.
    pub fn watched(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// Counts the changes a watch sees: every change, and the end of every listing (the first
/// may show a change made between a pod's own read and its subscription; a later one follows
/// a restarted watch, which may have missed one).
async fn follow(mut stream: BoxStream<'static, Seen>, changes: watch::Sender<u64>) {
    while let Some(seen) = stream.next().await {
        match seen {
            Seen::Listing => {}
            Seen::Listed | Seen::Changed => changes.send_modify(|n| *n += 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(events: Vec<Seen>) -> BoxStream<'static, Seen> {
        futures::stream::iter(events).boxed()
    }

    #[tokio::test]
    async fn listings_and_changes_count_objects_within_a_listing_do_not() {
        let (tx, rx) = watch::channel(0);
        follow(
            stream(vec![Seen::Listing, Seen::Listing, Seen::Listed]),
            tx.clone(),
        )
        .await;
        assert_eq!(*rx.borrow(), 1, "one listing");
        let (tx, rx) = watch::channel(0);
        follow(
            stream(vec![
                Seen::Listing,
                Seen::Listed,
                Seen::Changed,
                Seen::Listing,
                Seen::Listed,
            ]),
            tx,
        )
        .await;
        assert_eq!(
            *rx.borrow(),
            3,
            "a listing, a change, a new listing after a restart"
        );
    }

    #[tokio::test]
    async fn one_watch_per_object_ended_with_its_last_subscriber() {
        let config = kube::Config::new("http://127.0.0.1:1".parse().expect("url"));
        let client = kube::Client::try_from(config).expect("client");
        let watches = SourceWatches::new(client);
        let a = watches.subscribe(SourceKind::ConfigMap, "default", "site");
        let b = watches.subscribe(SourceKind::ConfigMap, "default", "site");
        let c = watches.subscribe(SourceKind::Secret, "default", "site");
        assert_eq!(watches.watched(), 2, "one watch per object, of either kind");
        drop(a);
        assert_eq!(watches.watched(), 2);
        drop(b);
        assert_eq!(watches.watched(), 1, "the last subscriber ends its watch");
        drop(c);
        assert_eq!(watches.watched(), 0);
    }
}
