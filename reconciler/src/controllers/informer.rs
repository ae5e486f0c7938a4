//! One watch and one cache of a kind, shared by every controller that reads it (client-go's
//! shared informer): the pods, watched once, serve the ReplicaSet, Job, DaemonSet,
//! StatefulSet and Endpoints controllers alike.
//!
//! A controller subscribes with a mapper from a changed object (added, modified or deleted) to
//! the owners to reconcile; the stream it gets feeds `Controller::reconcile_on`. Subscribe
//! before [`Informer::run`] starts, so that no event is missed.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::channel::mpsc;
use kube::Resource;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

type Subscriber<K> = Box<dyn Fn(&K) + Send + Sync>;

/// A shared watch and cache of `K`.
pub struct Informer<K: Resource + Clone + 'static>
where
    K::DynamicType: Hash + Eq + Clone,
{
    api: Api<K>,
    store: Store<K>,
    writer: Mutex<Option<reflector::store::Writer<K>>>,
    subscribers: Arc<Mutex<Vec<Subscriber<K>>>>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer of every `K` the client may see.
    /// (A cache that should hold only some fields of a kind reads them into a type of its own,
    /// as the pods' [`super::cached_pod::CachedPod`] does.)
    pub fn new(client: kube::Client) -> Informer<K> {
        let (store, writer) = reflector::store();
        Informer {
            api: Api::all(client),
            store,
            writer: Mutex::new(Some(writer)),
            subscribers: Arc::default(),
        }
    }

    /// The cache (empty until the first list is in; see `Store::wait_until_ready`).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// A stream of the owners `map` names for every change of a `K`.
    pub fn subscribe<T>(
        &self,
        map: impl Fn(&K) -> Vec<ObjectRef<T>> + Send + Sync + 'static,
    ) -> impl futures::Stream<Item = ObjectRef<T>> + Send + 'static
    where
        T: Resource + 'static,
        T::DynamicType: Hash + Eq + Clone + Send + Sync,
    {
        let (tx, rx) = mpsc::unbounded();
        let subscriber: Subscriber<K> = Box::new(move |object| {
            for target in map(object) {
                if tx.unbounded_send(target).is_err() {
                    // The controller has stopped; nothing left to tell.
                    return;
                }
            }
        });
        match self.subscribers.lock() {
            Ok(mut s) => s.push(subscriber),
            Err(_) => tracing::error!(
                "informer subscribers poisoned; a controller will not be told of changes"
            ),
        }
        rx
    }

    /// Drives the watch until `cancel`: fills the cache and tells the subscribers.
    pub async fn run(&self, cancel: CancellationToken) {
        let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) else {
            tracing::error!(kind = %K::kind(&()), "informer run twice");
            return;
        };
        let subscribers = self.subscribers.clone();
        // The cache drops managedFields (see `runner::controller`).
        let events = reflector::reflector(
            writer,
            watcher(self.api.clone(), watcher::Config::default())
                .default_backoff()
                .modify(super::runner::without_managed_fields),
        );
        let mut events = std::pin::pin!(events.take_until(cancel.cancelled_owned()));
        while let Some(event) = events.next().await {
            let object = match &event {
                Ok(
                    watcher::Event::Apply(o)
                    | watcher::Event::Delete(o)
                    | watcher::Event::InitApply(o),
                ) => o,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(kind = %K::kind(&()), error = %e, "watch failed; retrying with back-off");
                    continue;
                }
            };
            if let Ok(subscribers) = subscribers.lock() {
                for s in subscribers.iter() {
                    s(object);
                }
            }
        }
    }
}
