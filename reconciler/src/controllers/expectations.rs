//! Expectations, as kube-controller-manager keeps them: after a controller creates or deletes
//! children, it does not act on that owner again until its cache has seen those creations and
//! deletions (or five minutes have passed), so a slow watch never makes it create twice.
//!
//! Creations are tracked by the names the apiserver gave the children (the create answers
//! with them), deletions by the names deleted; the cache is asked, at each reconcile, which
//! of them it holds.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long an expectation is waited on before the controller acts regardless.
pub const EXPECTATION_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Pending {
    adds: HashSet<String>,
    deletes: HashSet<String>,
    since: Instant,
}

/// Outstanding creations and deletions per owner (`namespace/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    owners: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn record(&self, owner: &str, f: impl FnOnce(&mut Pending)) {
        if let Ok(mut owners) = self.owners.lock() {
            let pending = owners.entry(owner.to_owned()).or_insert_with(|| Pending {
                adds: HashSet::new(),
                deletes: HashSet::new(),
                since: Instant::now(),
            });
            pending.since = Instant::now();
            f(pending);
        }
    }

    /// `owner` created these children.
    pub fn created(&self, owner: &str, names: impl IntoIterator<Item = String>) {
        self.record(owner, |p| p.adds.extend(names));
    }

    /// `owner` deleted these children.
    pub fn deleted(&self, owner: &str, names: impl IntoIterator<Item = String>) {
        self.record(owner, |p| p.deletes.extend(names));
    }

    /// `owner`'s deletions of these children failed: they are not waited for.
    pub fn not_deleted(&self, owner: &str, names: impl IntoIterator<Item = String>) {
        if let Ok(mut owners) = self.owners.lock()
            && let Some(pending) = owners.get_mut(owner)
        {
            for name in names {
                pending.deletes.remove(&name);
            }
        }
    }

    /// Whether the cache has caught up with `owner`'s writes: every created child is in it
    /// (`cached` says so) and every deleted one is gone. Prunes what has been seen.
    pub fn satisfied(&self, owner: &str, cached: impl Fn(&str) -> bool) -> bool {
        let Ok(mut owners) = self.owners.lock() else {
            return true;
        };
        let Some(pending) = owners.get_mut(owner) else {
            return true;
        };
        pending.adds.retain(|n| !cached(n));
        pending.deletes.retain(|n| cached(n));
        let done = pending.adds.is_empty() && pending.deletes.is_empty();
        if done || pending.since.elapsed() >= EXPECTATION_TIMEOUT {
            if !done {
                tracing::warn!(
                    owner,
                    adds = pending.adds.len(),
                    deletes = pending.deletes.len(),
                    "expectations timed out; acting on the cache as it is"
                );
            }
            owners.remove(owner);
            return true;
        }
        false
    }

    /// Forgets `owner` (deleted).
    pub fn forget(&self, owner: &str) {
        if let Ok(mut owners) = self.owners.lock() {
            owners.remove(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_deletions_are_not_waited_for() {
        let e = Expectations::default();
        e.deleted("ns/a", ["gone".to_owned(), "kept".to_owned()]);
        e.not_deleted("ns/a", ["kept".to_owned()]);
        // `kept` is still cached (its delete failed); only `gone` is waited for.
        assert!(!e.satisfied("ns/a", |n| n == "gone" || n == "kept"));
        assert!(e.satisfied("ns/a", |n| n == "kept"));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_cache_then_times_out() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/a", |_| false));
        e.created("ns/a", ["p1".to_owned(), "p2".to_owned()]);
        e.deleted("ns/a", ["old".to_owned()]);
        assert!(!e.satisfied("ns/a", |n| n == "p1" || n == "old"));
        // p1 seen; p2 not yet, and `old` still cached.
        assert!(!e.satisfied("ns/a", |n| n == "old"));
        assert!(e.satisfied("ns/a", |n| n == "p2"));
        e.created("ns/a", ["p3".to_owned()]);
        tokio::time::advance(EXPECTATION_TIMEOUT).await;
        assert!(e.satisfied("ns/a", |_| false));
    }
}
