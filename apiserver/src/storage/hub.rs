//! The hub: delivers committed changes to this process's watchers.
//!
//! The local writer publishes what it commits; on PostgreSQL a listener publishes what other
//! processes commit (woken by NOTIFY, reading the change log). Only revisions newer than the
//! last published one are sent, so each change goes out once. A watcher that sees a gap in the
//! revisions (it lagged, or another process committed in between) reads the change log to
//! fill it: revisions are gap-free, so a gap is always detectable.

use std::sync::{Arc, Mutex};

use sqlx::AnyPool;
use tokio::sync::broadcast;

use super::change::{Change, Notice};

/// Buffered changes per watcher before it must catch up from the change log.
const CAPACITY: usize = 4096;

/// Delivers committed changes.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// Called with every change as it is published, before any watcher sees it.
pub type Observer = Arc<dyn Fn(&Change) + Send + Sync>;

struct Inner {
    pool: AnyPool,
    sender: broadcast::Sender<Arc<Notice>>,
    last_published: Mutex<i64>,
    observers: Mutex<Vec<Observer>>,
}

impl Hub {
    /// A hub whose history starts after `revision`.
    pub fn new(pool: AnyPool, revision: i64) -> Hub {
        let (sender, _) = broadcast::channel(CAPACITY);
        Hub {
            inner: Arc::new(Inner {
                pool,
                sender,
                last_published: Mutex::new(revision),
                observers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Sends the changes newer than any sent before, in order.
    pub fn publish(&self, changes: &[Arc<Change>]) {
        let Ok(mut last) = self.inner.last_published.lock() else {
            return;
        };
        let observers = self
            .inner
            .observers
            .lock()
            .map(|o| o.clone())
            .unwrap_or_default();
        for change in changes {
            if change.revision > *last {
                *last = change.revision;
                for observe in &observers {
                    observe(change);
                }
                // No receivers is fine: nobody is watching.
                if self.inner.sender.receiver_count() == 0 {
                    continue;
                }
                if self
                    .inner
                    .sender
                    .send(Arc::new(Notice::of(change)))
                    .is_err()
                {
                    tracing::trace!(revision = change.revision, "published with no watcher");
                }
            }
        }
    }

    /// Calls `observer` with every change published from now on, in revision order, before
    /// the writer answers the request that made it (so state derived from objects, such as the
    /// served custom kinds, is current when the client hears back).
    pub fn observe(&self, observer: Observer) {
        if let Ok(mut observers) = self.inner.observers.lock() {
            observers.push(observer);
        }
    }

    /// The newest revision published.
    pub fn last_published(&self) -> i64 {
        self.inner
            .last_published
            .lock()
            .map(|l| *l)
            .unwrap_or_default()
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Notice>> {
        self.inner.sender.subscribe()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }
}
