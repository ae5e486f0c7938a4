//! What a worker knows about its source, and the phase it is in.
//!
//! The phase is an explicit state machine:
//!
//! ```text
//!             rollback applied                    a new head arrives
//! Following ───────────────────▶ Pinned ───────────────────────────▶ Following
//!     │  ▲
//!     │  │ the head applies, is refused or is superseded;
//!     │  │ or a newer head arrives
//!     ▼  │
//! BackingOff  (applying the head failed: tried again after 1 s, doubling to 5 min)
//! ```
//!
//! The rest of the state (the applied commit and its manifests, the inventory of applied
//! objects, the requests answered, the next revision number) is what every phase shares; it is
//! rebuilt from the audit trail after a restart (see `restore`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::super::manifests::{Desired, ObjectId};

/// One sync attempt's outcome, as the state machine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Applied in one transaction.
    Applied,
    /// Refused (invalid, or the apiserver said no): not tried again until a new commit.
    Rejected,
    /// Could not be applied (the apiserver or the source was unreachable): tried again.
    Failed,
    /// A newer head arrived while this one was checked.
    Superseded,
}

/// Where the worker is with respect to the head of its source.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) enum Phase {
    /// The head is synced as it moves.
    #[default]
    Following,
    /// A rollback pinned the source to `commit`, while the head was `head`; a newer head ends it.
    Pinned {
        /// The commit rolled back to.
        commit: String,
        /// The head when the rollback was made.
        head: String,
    },
    /// Applying the head `commit` failed; it is not tried again before `after`.
    BackingOff {
        /// The head that failed.
        commit: String,
        /// When it may be tried again.
        after: Instant,
        /// The wait that led to `after` (doubled on the next failure).
        wait: Duration,
    },
}

/// The shortest and longest waits before a failed head is tried again.
const FIRST_WAIT: Duration = Duration::from_secs(1);
const LONGEST_WAIT: Duration = Duration::from_secs(300);

impl Phase {
    /// Whether the head `head` should be attempted now.
    pub(super) fn allows(&self, head: &str, now: Instant) -> bool {
        match self {
            Phase::Following => true,
            Phase::Pinned { head: pinned, .. } => pinned != head,
            Phase::BackingOff { commit, after, .. } => commit != head || now >= *after,
        }
    }

    /// The phase after an attempt of the head `commit` ended with `outcome`.
    pub(super) fn after_attempt(&self, commit: &str, outcome: Outcome, now: Instant) -> Phase {
        if outcome != Outcome::Failed {
            return Phase::Following;
        }
        let wait = match self {
            Phase::BackingOff {
                commit: failed,
                wait,
                ..
            } if failed == commit => (*wait * 2).min(LONGEST_WAIT),
            _ => FIRST_WAIT,
        };
        Phase::BackingOff {
            commit: commit.to_owned(),
            after: now + wait,
            wait,
        }
    }
}

/// What the worker knows about its source.
#[derive(Default)]
pub(super) struct State {
    /// Following, pinned or backing off.
    pub(super) phase: Phase,
    /// The commit the cluster is on.
    pub(super) applied: Option<String>,
    /// What that commit wants.
    pub(super) applied_desired: Option<Desired>,
    /// Objects the source applied and has not pruned.
    pub(super) inventory: BTreeSet<ObjectId>,
    /// The last head commit an attempt was made for (Applied or Rejected).
    pub(super) last_attempted: Option<String>,
    /// The next revision number.
    pub(super) next_sequence: u64,
    /// Requests already answered.
    pub(super) answered: HashSet<String>,
    /// Stops the health follower of the previous apply.
    pub(super) health: Option<CancellationToken>,
    /// Drifted objects to revert (their live state cut to the manifest's fields; null when
    /// missing), for the self-heal attempt.
    pub(super) healing: Option<HashMap<ObjectId, Value>>,
    /// The head last seen.
    pub(super) head: Option<String>,
    /// The objects the health follower is waiting on, with the follower's generation: a
    /// newer commit follows them too, so a rollout cut short still gets its verdict.
    pub(super) unsettled: std::sync::Arc<std::sync::Mutex<(u64, HashSet<ObjectId>)>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_heads_back_off_doubling_and_other_outcomes_clear_it() {
        let now = Instant::now();
        let phase = Phase::Following.after_attempt("a", Outcome::Failed, now);
        assert!(!phase.allows("a", now));
        assert!(phase.allows("b", now), "a new head is tried at once");
        assert!(phase.allows("a", now + FIRST_WAIT));
        let again = phase.after_attempt("a", Outcome::Failed, now + FIRST_WAIT);
        assert_eq!(
            again,
            Phase::BackingOff {
                commit: "a".into(),
                after: now + FIRST_WAIT + FIRST_WAIT * 2,
                wait: FIRST_WAIT * 2
            }
        );
        let mut long = again;
        for _ in 0..20 {
            long = long.after_attempt("a", Outcome::Failed, now);
        }
        assert!(matches!(long, Phase::BackingOff { wait, .. } if wait == LONGEST_WAIT));
        assert_eq!(
            long.after_attempt("a", Outcome::Applied, now),
            Phase::Following
        );
    }

    #[test]
    fn a_pin_holds_until_the_head_moves() {
        let pinned = Phase::Pinned {
            commit: "old".into(),
            head: "h1".into(),
        };
        let now = Instant::now();
        assert!(!pinned.allows("h1", now));
        assert!(pinned.allows("h2", now));
    }
}
