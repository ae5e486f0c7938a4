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

use super::change::Change;

/// Buffered changes per watcher before it must catch up from the change log.
const CAPACITY: usize = 4096;

/// Delivers committed changes.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    pool: AnyPool,
    sender: broadcast::Sender<Arc<Change>>,
    last_published: Mutex<i64>,
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
            }),
        }
    }

    /// Sends the changes newer than any sent before, in order.
    pub fn publish(&self, changes: &[Arc<Change>]) {
        let Ok(mut last) = self.inner.last_published.lock() else {
            return;
        };
        for change in changes {
            if change.revision > *last {
                *last = change.revision;
                // No receivers is fine: nobody is watching.
                let _ = self.inner.sender.send(change.clone());
            }
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

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.inner.sender.subscribe()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }
}
