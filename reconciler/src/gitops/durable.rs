//! Cluster writes of the GitOps engine, and what happens when one fails: nothing is dropped
//! silently. A write the audit depends on (a Rejected Revision, a Revision's health) is
//! retried with exponential back-off before it is given up with an error; a status patch that
//! the next one supersedes is tried once. Every failure is logged and counted
//! ([`failed_writes`], shown on `/metrics` as `ferry_gitops_failed_writes_total`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use super::cluster::ClusterError;

static FAILED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

fn count(what: &'static str) {
    if let Ok(mut failed) = FAILED.lock() {
        *failed.entry(what).or_default() += 1;
    }
}

/// Failed cluster writes so far, by what was being written.
pub fn failed_writes() -> Vec<(&'static str, u64)> {
    FAILED
        .lock()
        .map(|f| f.iter().map(|(k, v)| (*k, *v)).collect())
        .unwrap_or_default()
}

/// Writes that must land: retried (0.2 s doubling to 5 s, 8 tries) before giving up; each
/// failed try is logged and counted.
pub async fn must<T, F, Fut>(what: &'static str, write: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ClusterError>>,
{
    let backoff = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(8);
    let outcome = write
        .retry(backoff)
        .notify(|error: &ClusterError, wait: Duration| {
            count(what);
            tracing::warn!(write = what, %error, retry_in_ms = wait.as_millis() as u64, "a cluster write failed; retrying");
        })
        .await;
    if let Err(error) = &outcome {
        count(what);
        tracing::error!(write = what, %error, "a cluster write failed for good");
    }
    outcome
}

/// A write the next one supersedes (a Source's status): tried once; a failure is logged and
/// counted.
pub async fn once<T>(what: &'static str, write: impl Future<Output = Result<T, ClusterError>>) {
    if let Err(error) = write.await {
        count(what);
        tracing::warn!(write = what, %error, "a cluster write failed; the next one supersedes it");
    }
}
