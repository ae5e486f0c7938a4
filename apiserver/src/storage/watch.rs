//! A watch: every change after a revision, in revision order, none missed, none repeated.
//!
//! It subscribes to the hub first, then reads the change log from its starting revision, then
//! follows the hub, skipping what it already delivered and refilling from the change log
//! whenever the next revision is not the one it expects.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use super::change::Notice;
use super::error::StorageError;
use super::hub::Hub;

/// Changes read from the change log at a time.
const PAGE: i64 = 1000;

/// A stream of changes after a revision.
pub struct Watch {
    hub: Hub,
    live: Receiver<Arc<Notice>>,
    last: i64,
    backlog: VecDeque<Arc<Notice>>,
    caught_up: bool,
}

impl Watch {
    pub(crate) fn new(hub: Hub, after: i64) -> Watch {
        let live = hub.subscribe();
        Watch {
            hub,
            live,
            last: after,
            backlog: VecDeque::new(),
            caught_up: false,
        }
    }

    /// The revision of the last change delivered (or the starting revision).
    pub fn revision(&self) -> i64 {
        self.last
    }

    async fn refill(&mut self) -> Result<usize, StorageError> {
        let notices = super::notices_after(self.hub.pool(), self.last, PAGE).await?;
        let n = notices.len();
        self.backlog.extend(notices);
        Ok(n)
    }

    /// The next change; waits for one. `Expired` when the starting revision was compacted.
    pub async fn next(&mut self) -> Result<Arc<Notice>, StorageError> {
        loop {
            if let Some(change) = self.backlog.pop_front() {
                if change.revision > self.last {
                    self.last = change.revision;
                    return Ok(change);
                }
                continue;
            }
            if !self.caught_up {
                let n = self.refill().await?;
                self.caught_up = (n as i64) < PAGE;
                continue;
            }
            match self.live.recv().await {
                Ok(change) if change.revision <= self.last => continue,
                Ok(change) if change.revision == self.last + 1 => {
                    self.last = change.revision;
                    return Ok(change);
                }
                Ok(change) => {
                    // A gap: read what is missing from the change log.
                    let n = self.refill().await?;
                    self.caught_up = (n as i64) < PAGE;
                    if n == 0 {
                        self.backlog.push_back(change);
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let n = self.refill().await?;
                    self.caught_up = (n as i64) < PAGE;
                }
                Err(RecvError::Closed) => {
                    return Err(StorageError::Unavailable(
                        "the change hub has closed".into(),
                    ));
                }
            }
        }
    }
}
