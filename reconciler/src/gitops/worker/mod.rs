//! One source's sync loop: a [`SourceWorker`] takes [`Trigger`]s (a ref moved, a poll, `ferry
//! sync`, `ferry rollback`, a drift check) one at a time, so two syncs of one source never run
//! at once.
//!
//! A sync attempt of a commit: load its manifests, validate them whole, admit them in a dry-run
//! transaction, then apply them (only what changed since the applied commit, plus prunes)
//! together with the commit's `Revision` record in **one** transaction. Any refusal records a
//! `Rejected` revision and leaves the cluster on the last good commit; the next commit is tried
//! on its own merits. After apply the revision's health is followed.
//!
//! The worker is a state machine ([`state::Phase`]: following the head, pinned by a rollback,
//! or backing off a head that failed to apply); each concern is a file: the queue
//! (`pending`), following the head (`follow`), one attempt (`attempt`) and its transaction
//! (`plan`), the audit records (`record`), health (`health_follow`), drift (`drift_check`) and
//! the rebuild after a restart (`restore`).

mod attempt;
mod drift_check;
mod follow;
mod health_follow;
mod pending;
mod plan;
mod record;
mod restore;
mod state;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use ferry_schema::ferry::{RevisionResult, SourceSpec, Trigger as TriggerKind};
use ferry_schema::validate::Validator;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::checkout::Checkout;
use super::cluster::Cluster;
use super::drift_watch::Wanted;
use super::manifests::Loader;
use attempt::Attempt;
use pending::Pending;
use record::general;
use state::{Outcome, Phase, State};

/// The label on a `Revision` naming the request (`ferry sync`, `ferry rollback`) it answers.
pub const REQUEST_LABEL: &str = "ferry.dev/request";
/// The label on a `Revision` naming its commit.
pub const COMMIT_LABEL: &str = "ferry.dev/commit";

/// Why a worker should look at its source.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// The ref or directory watch saw a change.
    Watch,
    /// The poll interval passed (or a webhook asked for a fetch).
    Poll {
        /// From a webhook rather than the timer.
        webhook: bool,
    },
    /// `ferry sync`: sync the head now, pinned or not.
    Sync {
        /// Request id.
        request: String,
        /// Who asked.
        by: String,
    },
    /// `ferry rollback` or auto-rollback: apply this commit and pin the source there.
    Rollback {
        /// Request id.
        request: String,
        /// The commit to go back to.
        commit: String,
        /// Why.
        reason: String,
        /// Who asked.
        by: String,
    },
    /// Compare the live objects with the applied commit.
    DriftCheck,
}

impl Trigger {
    /// The trigger's name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Watch => "watch",
            Trigger::Poll { .. } => "poll",
            Trigger::Sync { .. } => "sync",
            Trigger::Rollback { .. } => "rollback",
            Trigger::DriftCheck => "drift-check",
        }
    }
}

/// Settings shared by every worker.
#[derive(Clone)]
pub struct Settings {
    /// The validator commits are checked with.
    pub validator: Arc<Validator>,
    /// How often remote sources are polled (local ones are watched; this is their safety net).
    pub poll_interval: Duration,
    /// How often live objects are compared with the applied commit.
    pub drift_interval: Duration,
    /// How often health is looked at after an apply.
    pub health_interval: Duration,
    /// How long an applied revision may take to become healthy before it is Degraded.
    pub health_timeout: Duration,
    /// Where remote repositories are mirrored.
    pub mirrors: std::path::PathBuf,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("poll_interval", &self.poll_interval)
            .field("drift_interval", &self.drift_interval)
            .field("health_timeout", &self.health_timeout)
            .finish_non_exhaustive()
    }
}

/// Syncs one source.
pub struct SourceWorker {
    name: String,
    spec: SourceSpec,
    cluster: Cluster,
    checkout: Arc<dyn Checkout>,
    settings: Settings,
    state: State,
    loader: Loader,
    triggers: mpsc::Sender<Trigger>,
    /// What the applied commit wants, for the drift watchers.
    wanted: tokio::sync::watch::Sender<Wanted>,
    /// Kinds with a drift watcher, and what stops them.
    watched: (HashSet<(String, String)>, CancellationToken),
    /// Signalled by the source's file watcher. A signal is never lost: one that arrives while
    /// a look is under way leaves a permit, and the worker looks again (a bounded queue could
    /// drop the event of the ref update itself, and the change waited for the next poll).
    changed: Arc<tokio::sync::Notify>,
}

impl SourceWorker {
    /// A worker for source `name`; `triggers` is the sending side of its own queue (for
    /// auto-rollback).
    pub fn new(
        name: String,
        spec: SourceSpec,
        cluster: Cluster,
        checkout: Arc<dyn Checkout>,
        settings: Settings,
        triggers: mpsc::Sender<Trigger>,
    ) -> SourceWorker {
        let loader = Loader::new(settings.validator.clone(), &name);
        SourceWorker {
            loader,
            wanted: tokio::sync::watch::Sender::new(None),
            watched: (HashSet::new(), CancellationToken::new()),
            changed: Arc::new(tokio::sync::Notify::new()),
            name,
            spec,
            cluster,
            checkout,
            settings,
            state: State::default(),
            triggers,
        }
    }

    /// The signal the source's file watcher fires on each change.
    pub fn change_signal(&self) -> Arc<tokio::sync::Notify> {
        self.changed.clone()
    }

    /// Runs until `cancel` fires or every sender is gone.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Trigger>, cancel: CancellationToken) {
        // The apiserver may not be up yet: rebuild the state with back-off until it answers.
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(10))
            .without_max_times()
            .build();
        loop {
            match self.load_state().await {
                Ok(state) => {
                    self.state = state;
                    break;
                }
                Err(error) => {
                    let wait = delays.next().unwrap_or(Duration::from_secs(10));
                    tracing::warn!(source = %self.name, %error, retry_in_ms = wait.as_millis() as u64, "waiting for the apiserver");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        let every = self
            .spec
            .interval
            .as_deref()
            .and_then(parse_interval)
            .unwrap_or(self.settings.poll_interval);
        let mut poll = tokio::time::interval(every);
        // The first look is the start-up one below, not an immediate tick.
        poll.reset();
        let mut drift = tokio::time::interval(self.settings.drift_interval);
        drift.reset();
        self.watch_drift(None);
        let mut pending = Pending::default();
        pending.add(Trigger::Watch);
        'run: loop {
            if pending.is_empty() {
                let t = tokio::select! {
                    () = cancel.cancelled() => break 'run,
                    t = queue.recv() => match t { Some(t) => t, None => break 'run },
                    () = self.changed.notified() => Trigger::Watch,
                    _ = poll.tick() => Trigger::Poll { webhook: false },
                    _ = drift.tick() => Trigger::DriftCheck,
                };
                pending.add(t);
            }
            // Whatever else is queued joins: bursts of events become one look.
            while let Ok(t) = queue.try_recv() {
                pending.add(t);
            }
            // A directory being written to is looked at once it has been quiet a while.
            let settle = self.checkout.settle();
            while !settle.is_zero() && pending.look == Some(Trigger::Watch) {
                let mut more = tokio::select! {
                    () = cancel.cancelled() => break 'run,
                    () = self.changed.notified() => true,
                    () = tokio::time::sleep(settle) => false,
                };
                while let Ok(t) = queue.try_recv() {
                    more = true;
                    pending.add(t);
                }
                if !more {
                    break;
                }
            }
            let Some(trigger) = pending.next() else {
                continue;
            };
            if trigger == Trigger::DriftCheck {
                // A drift check reads every object of the commit; a new head must not wait
                // for it. The check is dropped (it only reads) and made again after the sync.
                // It waits for the source to be quiet a moment: while commits arrive, they go
                // first.
                let changed = self.changed.clone();
                let found = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break 'run,
                    () = changed.notified() => None,
                    found = async {
                        tokio::time::sleep(DRIFT_QUIET).await;
                        self.find_drift().await
                    } => Some(found),
                };
                match found {
                    Some(Some(drift)) => self.act_on_drift(drift).await,
                    Some(None) => {}
                    None => {
                        tracing::debug!(source = %self.name, "drift check put off for a new head");
                        pending.add(Trigger::Watch);
                        pending.add(Trigger::DriftCheck);
                    }
                }
                continue;
            }
            self.handle(trigger).await;
        }
        if let Some(h) = self.state.health.take() {
            h.cancel();
        }
        self.watched.1.cancel();
    }

    async fn handle(&mut self, trigger: Trigger) {
        tracing::debug!(source = %self.name, trigger = trigger.name(), "trigger");
        match trigger {
            Trigger::DriftCheck => {
                if let Some(drift) = self.find_drift().await {
                    self.act_on_drift(drift).await;
                }
            }
            Trigger::Rollback {
                request,
                commit,
                reason,
                by,
            } => {
                if !self.state.answered.insert(request.clone()) {
                    return;
                }
                let head = self.head().await.ok();
                let full = match self.resolve_commit(&commit).await {
                    Ok(c) => c,
                    Err(e) => {
                        let attempt = Attempt {
                            started: Value::Null,
                            commit: commit.clone(),
                            trigger: TriggerKind::Rollback,
                            request: Some(request),
                            by: Some(by),
                            reason: Some(reason),
                        };
                        self.record_failure(
                            &attempt,
                            None,
                            RevisionResult::Rejected,
                            vec![general(e)],
                        )
                        .await;
                        return;
                    }
                };
                let attempt = Attempt {
                    started: Value::Null,
                    commit: full.clone(),
                    trigger: TriggerKind::Rollback,
                    request: Some(request),
                    by: Some(by),
                    reason: Some(reason),
                };
                if self.attempt(attempt).await == Outcome::Applied {
                    let head = head.unwrap_or_default();
                    self.state.phase = Phase::Pinned {
                        commit: full.clone(),
                        head: head.clone(),
                    };
                    self.set_status(json!({"pinnedCommit": full, "pinnedHead": head}))
                        .await;
                }
            }
            Trigger::Sync { request, by } => {
                if !self.state.answered.insert(request.clone()) {
                    return;
                }
                match self.head().await {
                    Ok(head) => {
                        self.state.phase = Phase::Following;
                        self.set_status(
                            json!({"pinnedCommit": null, "pinnedHead": null, "headCommit": head}),
                        )
                        .await;
                        let attempt = Attempt {
                            started: Value::Null,
                            commit: head,
                            trigger: TriggerKind::Manual,
                            request: Some(request),
                            by: Some(by),
                            reason: None,
                        };
                        self.attempt(attempt).await;
                    }
                    Err(e) => {
                        let attempt = Attempt {
                            started: Value::Null,
                            commit: String::new(),
                            trigger: TriggerKind::Manual,
                            request: Some(request),
                            by: Some(by),
                            reason: None,
                        };
                        self.record_failure(
                            &attempt,
                            None,
                            RevisionResult::Failed,
                            vec![general(format!("the source cannot be read: {e}"))],
                        )
                        .await;
                    }
                }
            }
            Trigger::Watch | Trigger::Poll { .. } => {
                let kind = match trigger {
                    Trigger::Poll { webhook: true } => TriggerKind::Webhook,
                    _ if self.checkout.is_remote() => TriggerKind::Poll,
                    _ => TriggerKind::Watch,
                };
                self.follow_head(kind).await;
            }
        }
    }
}

/// How long the source must be quiet before a drift check runs.
const DRIFT_QUIET: Duration = Duration::from_secs(1);

/// A Source's `spec.interval` in Go's form (`15s`, `1m30s`, `500ms`); `None` when malformed
/// or zero.
pub fn parse_interval(text: &str) -> Option<Duration> {
    ferry_schema::duration::parse(text)
        .ok()
        .filter(|d| !d.is_zero())
}

/// The first 12 characters of a commit id.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}
