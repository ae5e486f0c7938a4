//! The scheduling queue: pods waiting for a node, highest priority first and then oldest; a
//! pod that fit nowhere backs off (1 s, doubling to 10 s) unless a change to the cluster could
//! make it fit, which sends it back at once.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::pod_info::{PodInfo, PodKey};

/// The first back-off of a pod that fit nowhere.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Where a queued pod is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Waiting its turn.
    Active,
    /// Backing off until then.
    BackingOff(Instant),
    /// Being scheduled or bound; a change that arrives meanwhile is kept for after.
    InFlight,
}

#[derive(Debug)]
struct Queued {
    info: Arc<PodInfo>,
    attempts: u32,
    place: Place,
    /// Updated while in flight: goes back to the queue when the attempt ends.
    changed: bool,
    seq: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct Turn {
    priority: i32,
    created: String,
    seq: u64,
    key: PodKey,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> Ordering {
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.created.cmp(&self.created))
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The queue.
#[derive(Debug, Default)]
pub struct SchedulingQueue {
    pods: HashMap<PodKey, Queued>,
    active: BinaryHeap<Turn>,
    backoff: BTreeSet<(Instant, u64, PodKey)>,
    seq: u64,
}

impl SchedulingQueue {
    fn push_active(&mut self, key: &PodKey) {
        self.seq += 1;
        let seq = self.seq;
        if let Some(q) = self.pods.get_mut(key) {
            q.place = Place::Active;
            q.seq = seq;
            self.active.push(Turn {
                priority: q.info.priority,
                created: q.info.created.clone(),
                seq,
                key: key.clone(),
            });
        }
    }

    /// A pod without a node appeared or changed.
    pub fn add(&mut self, info: Arc<PodInfo>) {
        let key = info.key.clone();
        match self.pods.get_mut(&key) {
            Some(q) => {
                q.info = info;
                match q.place {
                    Place::InFlight => q.changed = true,
                    // An update may have fixed what kept it out: try again now.
                    Place::BackingOff(_) | Place::Active => self.push_active(&key),
                }
            }
            None => {
                self.pods.insert(
                    key.clone(),
                    Queued {
                        info,
                        attempts: 0,
                        place: Place::Active,
                        changed: false,
                        seq: 0,
                    },
                );
                self.push_active(&key);
            }
        }
    }

    /// A pod was deleted or got a node some other way.
    pub fn remove(&mut self, key: &str) {
        self.pods.remove(key);
    }

    /// The next pod to schedule, if one is due.
    pub fn pop(&mut self, now: Instant) -> Option<Arc<PodInfo>> {
        while let Some(first) = self.backoff.first().cloned() {
            if first.0 > now {
                break;
            }
            self.backoff.remove(&first);
            let due = matches!(self.pods.get(&first.2), Some(q) if q.place == Place::BackingOff(first.0) && q.seq == first.1);
            if due {
                self.push_active(&first.2);
            }
        }
        while let Some(turn) = self.active.pop() {
            let Some(q) = self.pods.get_mut(&turn.key) else {
                continue;
            };
            if q.place != Place::Active || q.seq != turn.seq {
                continue; // a stale entry
            }
            q.place = Place::InFlight;
            q.changed = false;
            return Some(q.info.clone());
        }
        None
    }

    /// When the next backing-off pod is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.backoff.first().map(|(at, _, _)| *at)
    }

    /// The pod was bound (or is in the cache as assumed): it leaves the queue.
    pub fn done(&mut self, key: &str) {
        self.pods.remove(key);
    }

    /// The pod fit nowhere (or its binding failed): it backs off, unless it changed meanwhile.
    pub fn failed(&mut self, key: &str, now: Instant) {
        let Some(q) = self.pods.get_mut(key) else {
            return;
        };
        q.attempts += 1;
        if q.changed {
            let key = key.to_owned();
            self.push_active(&key);
            return;
        }
        let exponent = q.attempts.saturating_sub(1).min(8);
        let wait = (INITIAL_BACKOFF * 2u32.pow(exponent)).min(MAX_BACKOFF);
        self.seq += 1;
        q.seq = self.seq;
        q.place = Place::BackingOff(now + wait);
        self.backoff.insert((now + wait, self.seq, key.to_owned()));
    }

    /// Something changed that could make backing-off pods fit (a node joined or changed, a
    /// pod left): they are tried at once.
    pub fn cluster_changed(&mut self) {
        let waiting: Vec<PodKey> = self
            .pods
            .iter()
            .filter(|(_, q)| matches!(q.place, Place::BackingOff(_)))
            .map(|(k, _)| k.clone())
            .collect();
        self.backoff.clear();
        for key in waiting {
            self.push_active(&key);
        }
    }

    /// Pods waiting (active or backing off), not counting those in flight.
    pub fn pending(&self) -> usize {
        self.pods
            .values()
            .filter(|q| q.place != Place::InFlight)
            .count()
    }

    /// How many times a pod failed so far.
    pub fn attempts(&self, key: &str) -> u32 {
        self.pods.get(key).map_or(0, |q| q.attempts)
    }
}
