//! The workload controllers' error type, and the policy that turns a failed reconcile into a
//! requeue with per-object exponential back-off (5 ms doubling to 1,000 s, as client-go's
//! default rate limiter), forgotten on the next success.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ferry_schema::selector::SelectorError;

/// Why one reconcile failed. Every variant is retried with back-off.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A call to the apiserver failed.
    #[error("{verb} {what}: {source}")]
    Api {
        /// What was being done (`create`, `patch status of`, ...).
        verb: &'static str,
        /// The object, as `kind ns/name`.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The object's selector cannot be read.
    #[error("{what} has an invalid selector: {source}")]
    Selector {
        /// The object.
        what: String,
        /// The parser's complaint.
        #[source]
        source: SelectorError,
    },
    /// The apiserver refused a create or delete the object needs (a quota, a LimitRange, an
    /// invalid template); reported in the object's status and retried with back-off.
    #[error("{what}: {message}")]
    Refused {
        /// The object.
        what: String,
        /// The refusal.
        message: String,
    },
    /// The object is not what a controller can act on.
    #[error("{what}: {message}")]
    Invalid {
        /// The object.
        what: String,
        /// Why.
        message: String,
    },
}

impl ControllerError {
    /// An apiserver failure while doing `verb` to `what`.
    pub fn api(verb: &'static str, what: impl Into<String>, source: kube::Error) -> Self {
        ControllerError::Api {
            verb,
            what: what.into(),
            source,
        }
    }

    /// True when the apiserver answered 404 (the object went away meanwhile).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ControllerError::Api { source: kube::Error::Api(s), .. } if s.code == 404)
    }

    /// True when the apiserver answered 409 (a stale read or a name taken).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ControllerError::Api { source: kube::Error::Api(s), .. } if s.code == 409)
    }
}

/// Per-object failure counts, for the back-off of the next retry.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

/// The first retry's delay.
const BASE: Duration = Duration::from_millis(5);
/// The longest delay.
const CAP: Duration = Duration::from_secs(1000);

impl Backoff {
    /// Counts a failure of `key` and says how long to wait before the next try.
    pub fn failed(&self, key: &str) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return CAP;
        };
        let count = failures.entry(key.to_owned()).or_insert(0);
        let delay = BASE.saturating_mul(1u32 << (*count).min(20));
        *count = count.saturating_add(1);
        delay.min(CAP)
    }

    /// Forgets `key`'s failures after a success.
    pub fn succeeded(&self, key: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_forgets() {
        let b = Backoff::default();
        assert_eq!(b.failed("a"), Duration::from_millis(5));
        assert_eq!(b.failed("a"), Duration::from_millis(10));
        assert_eq!(b.failed("a"), Duration::from_millis(20));
        assert_eq!(b.failed("b"), Duration::from_millis(5));
        for _ in 0..30 {
            b.failed("a");
        }
        assert_eq!(b.failed("a"), CAP);
        b.succeeded("a");
        assert_eq!(b.failed("a"), Duration::from_millis(5));
    }
}
