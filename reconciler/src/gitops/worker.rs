//! One source's sync loop: a [`SourceWorker`] takes [`Trigger`]s (a ref moved, a poll, `ferry
//! sync`, `ferry rollback`, a drift check) one at a time, so two syncs of one source never run
//! at once.
//!
//! A sync attempt of a commit: load its manifests, validate them whole, admit them in a dry-run
//! transaction, then apply them (only what changed since the applied commit, plus prunes)
//! together with the commit's `Revision` record in **one** transaction. Any refusal records a
//! `Rejected` revision and leaves the cluster on the last good commit; the next commit is tried
//! on its own merits. After apply the revision's health is followed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ferry_schema::ferry::{
    ChangeAction, ObjectChange, ObjectRef, RevisionFinding, RevisionHealth, RevisionResult,
    RevisionSpec, SourceSpec, Trigger as TriggerKind,
};
use ferry_schema::validate::Validator;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::checkout::{Checkout, Snapshot};
use super::cluster::{Cluster, ClusterError, FERRY_NAMESPACE, REVISION_LABEL, sequence};
use super::diff;
use super::drift;
use super::drift_watch::{self, Wanted};
use super::durable;
use super::health::{self, Health};
use super::manifests::{COMMIT_ANNOTATION, Desired, Loader, ObjectId};

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

fn now() -> Value {
    json!(
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    )
}

/// A finding without a file.
fn general(message: impl Into<String>) -> RevisionFinding {
    RevisionFinding {
        message: message.into(),
        ..RevisionFinding::default()
    }
}

/// `spec.template.spec.containers[0].image` → `/spec/template/spec/containers/0/image`.
fn pointer_of(dotted: &str) -> String {
    let mut out = String::new();
    for part in dotted.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push('/');
            out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in rest.split('[') {
            let index = index.trim_end_matches(']');
            if !index.is_empty() {
                out.push('/');
                out.push_str(index);
            }
        }
    }
    out
}

/// One sync attempt's outcome, as the state machine needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Rejected,
    Failed,
    Superseded,
}

/// What the worker knows about its source.
#[derive(Default)]
struct State {
    /// The commit the cluster is on.
    applied: Option<String>,
    /// What that commit wants.
    applied_desired: Option<Desired>,
    /// Objects the source applied and has not pruned.
    inventory: BTreeSet<ObjectId>,
    /// The last head commit an attempt was made for (Applied or Rejected).
    last_attempted: Option<String>,
    /// A rollback's commit and the head it was made at.
    pinned: Option<(String, String)>,
    /// The next revision number.
    next_sequence: u64,
    /// Requests already answered.
    answered: HashSet<String>,
    /// Stops the health follower of the previous apply.
    health: Option<CancellationToken>,
    /// A commit whose apply failed (not refused): when it may be tried again, and the wait
    /// after that.
    retry: Option<(String, tokio::time::Instant, Duration)>,
    /// The commit of the last Failed attempt.
    last_failed: Option<String>,
    /// Drifted objects to revert (their live state cut to the manifest's fields; null when
    /// missing), for the self-heal attempt.
    healing: Option<HashMap<ObjectId, Value>>,
    /// The head last seen.
    head: Option<String>,
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
            name,
            spec,
            cluster,
            checkout,
            settings,
            state: State::default(),
            triggers,
        }
    }

    /// Runs until `cancel` fires or every sender is gone.
    pub async fn run(mut self, mut queue: mpsc::Receiver<Trigger>, cancel: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.restore().await {
                Ok(()) => break,
                Err(e) => {
                    self.set_status(json!({"message": format!("waiting for the apiserver: {e}")}))
                        .await;
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
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
                tokio::select! {
                    () = cancel.cancelled() => break 'run,
                    () = tokio::time::sleep(settle) => {}
                }
                let mut more = false;
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
            self.handle(trigger).await;
        }
        if let Some(h) = self.state.health.take() {
            h.cancel();
        }
        self.watched.1.cancel();
    }

    /// Publishes what the applied commit wants to the drift watchers, starting a watcher for
    /// each kind not yet watched.
    fn watch_drift(&mut self, desired: Option<&Desired>) {
        let Some(desired) = desired.or(self.state.applied_desired.as_ref()) else {
            return;
        };
        let wanted: HashMap<ObjectId, Arc<Value>> = desired
            .objects
            .iter()
            .map(|o| (o.id.clone(), o.object.clone()))
            .collect();
        let mut start = Vec::new();
        for o in &desired.objects {
            let key = (o.id.api_version.clone(), o.id.kind.clone());
            if !self.watched.0.contains(&key) && !start.contains(&key) {
                start.push(key);
            }
        }
        self.wanted.send_replace(Some(Arc::new(wanted)));
        for key in start {
            drift_watch::spawn(
                self.cluster.client().clone(),
                &self.name,
                &key.0,
                &key.1,
                self.wanted.subscribe(),
                self.triggers.clone(),
                self.watched.1.clone(),
            );
            self.watched.0.insert(key);
        }
    }

    /// Rebuilds the state from the audit and the live objects (after a restart or crash).
    async fn restore(&mut self) -> Result<(), ClusterError> {
        let revisions = self.cluster.revisions(Some(&self.name)).await?;
        let mut state = State {
            next_sequence: revisions.iter().map(sequence).max().unwrap_or(0) + 1,
            ..State::default()
        };
        for r in &revisions {
            let commit = r["spec"]["commit"].as_str().map(str::to_owned);
            let result = r["status"]["result"].as_str().unwrap_or_default();
            let trigger = r["spec"]["trigger"].as_str().unwrap_or_default();
            if let Some(request) = r["metadata"]["labels"][REQUEST_LABEL].as_str() {
                state.answered.insert(request.to_owned());
            }
            if result == "Applied" {
                state.applied.clone_from(&commit);
            }
            if matches!(result, "Applied" | "Rejected")
                && !matches!(trigger, "rollback" | "self-heal")
            {
                state.last_attempted = commit;
            }
        }
        if let Some(source) = self.cluster.source(&self.name).await? {
            let status = &source["status"];
            if let (Some(c), Some(h)) = (
                status["pinnedCommit"].as_str(),
                status["pinnedHead"].as_str(),
            ) {
                state.pinned = Some((c.to_owned(), h.to_owned()));
            }
        }
        state.inventory = self
            .cluster
            .applied_by(&self.name)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        if let Some(applied) = &state.applied
            && let Ok(snapshot) = self.snapshot(applied).await
        {
            let desired = self.loader.load(&snapshot);
            if desired.findings.is_empty() {
                state.applied_desired = Some(desired);
            }
        }
        self.state = state;
        Ok(())
    }

    async fn snapshot(&self, commit: &str) -> Result<Snapshot, String> {
        let checkout = self.checkout.clone();
        let commit = commit.to_owned();
        let known = self.loader.known();
        tokio::task::spawn_blocking(move || checkout.snapshot(&commit, &known))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    async fn head(&self) -> Result<String, String> {
        let checkout = self.checkout.clone();
        tokio::task::spawn_blocking(move || {
            checkout.fetch()?;
            checkout.head()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }

    async fn set_status(&self, patch: Value) {
        // A failed status write is repaired by the next one; the audit is what must be right.
        durable::once(
            "source status",
            self.cluster
                .patch_source(&self.name, &json!({"status": patch}), true),
        )
        .await;
    }

    async fn handle(&mut self, trigger: Trigger) {
        tracing::debug!(source = %self.name, trigger = trigger.name(), "trigger");
        match trigger {
            Trigger::DriftCheck => self.check_drift().await,
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
                    self.state.pinned = Some((full.clone(), head.clone()));
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
                        self.state.pinned = None;
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

    /// Looks at the head and syncs it if it is new (and the source is not pinned to it).
    async fn follow_head(&mut self, kind: TriggerKind) {
        let head = match self.head().await {
            Ok(head) => head,
            Err(e) => {
                self.set_status(json!({
                    "message": format!("the source cannot be read; the cluster stays on {}: {e}",
                        self.state.applied.as_deref().unwrap_or("nothing")),
                    "lastFetchTime": now(),
                }))
                .await;
                return;
            }
        };
        // The status is written when the head moves, not on every look.
        if self.state.head.as_deref() != Some(head.as_str()) {
            self.state.head = Some(head.clone());
            // Not awaited: the sync of the new head goes first.
            let cluster = self.cluster.clone();
            let name = self.name.clone();
            let patch = json!({"status": {"headCommit": head, "lastFetchTime": now()}});
            tokio::spawn(async move {
                durable::once("source head", cluster.patch_source(&name, &patch, true)).await;
            });
        }
        if let Some((_, pinned_head)) = &self.state.pinned {
            if *pinned_head == head {
                return;
            }
            // A newer commit arrived: the rollback pin ends.
            self.state.pinned = None;
            self.set_status(json!({"pinnedCommit": null, "pinnedHead": null}))
                .await;
        }
        if self.state.last_attempted.as_deref() == Some(head.as_str()) {
            return;
        }
        if let Some((commit, after, _)) = &self.state.retry
            && *commit == head
            && tokio::time::Instant::now() < *after
        {
            return;
        }
        let attempt = Attempt {
            started: Value::Null,
            commit: head,
            trigger: kind,
            request: None,
            by: None,
            reason: None,
        };
        let mut outcome = self.attempt(attempt).await;
        self.note_failure(outcome);
        // Superseded: the head moved while this one was checked; go straight to the new one.
        let mut rounds = 0;
        while outcome == Outcome::Superseded && rounds < 8 {
            rounds += 1;
            let Ok(head) = self.head().await else { return };
            let attempt = Attempt {
                started: Value::Null,
                commit: head,
                trigger: kind,
                request: None,
                by: None,
                reason: None,
            };
            outcome = self.attempt(attempt).await;
            self.note_failure(outcome);
        }
    }

    /// After a failed apply of the head, waits longer before each new try of that commit
    /// (1 s doubling to 5 min); any other outcome clears the wait.
    fn note_failure(&mut self, outcome: Outcome) {
        if outcome != Outcome::Failed {
            self.state.retry = None;
            return;
        }
        let Some(head) = self.state.last_failed.clone() else {
            return;
        };
        let wait = match &self.state.retry {
            Some((commit, _, wait)) if *commit == head => (*wait * 2).min(Duration::from_secs(300)),
            _ => Duration::from_secs(1),
        };
        self.state.retry = Some((head, tokio::time::Instant::now() + wait, wait));
    }

    /// A full commit id from a prefix, branch or tag.
    async fn resolve_commit(&self, commit: &str) -> Result<String, String> {
        let checkout = self.checkout.clone();
        let commit = commit.to_owned();
        tokio::task::spawn_blocking(move || checkout.resolve(&commit))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    fn revision_name(&mut self) -> String {
        let n = self.state.next_sequence;
        self.state.next_sequence += 1;
        format!("{}-{n:06}", self.name)
    }

    fn revision_body(&mut self, attempt: &Attempt, snapshot: Option<&Snapshot>) -> Value {
        let info = snapshot.map(|s| s.info.clone()).unwrap_or_default();
        let spec = RevisionSpec {
            source: self.name.clone(),
            commit: attempt.commit.clone(),
            parents: info.parents,
            author: info.author,
            committer: info.committer,
            message: info.message,
            trigger: attempt.trigger,
            requested_by: attempt.by.clone(),
            reason: attempt.reason.clone(),
            rollback_from: (attempt.trigger == TriggerKind::Rollback)
                .then(|| self.state.applied.clone())
                .flatten(),
        };
        let mut labels = json!({REVISION_LABEL: self.name});
        if !attempt.commit.is_empty() {
            labels[COMMIT_LABEL] = json!(attempt.commit);
        }
        if let Some(request) = &attempt.request {
            labels[REQUEST_LABEL] = json!(request);
        }
        json!({
            "apiVersion": "ferry.dev/v1",
            "kind": "Revision",
            "metadata": {"name": self.revision_name(), "namespace": FERRY_NAMESPACE, "labels": labels},
            "spec": serde_json::to_value(spec).unwrap_or_default(),
        })
    }

    /// Records an attempt that applied nothing.
    async fn record_failure(
        &mut self,
        attempt: &Attempt,
        snapshot: Option<&Snapshot>,
        result: RevisionResult,
        errors: Vec<RevisionFinding>,
    ) {
        tracing::warn!(
            result = ?result,
            findings = errors.len(),
            first = errors.first().map(|e| e.message.as_str()).unwrap_or_default(),
            "commit not applied"
        );
        if result == RevisionResult::Failed {
            self.state.last_failed = Some(attempt.commit.clone());
        }
        let mut revision = self.revision_body(attempt, snapshot);
        let name = revision["metadata"]["name"].clone();
        revision["status"] = json!({
            "result": result,
            "health": RevisionHealth::Unknown,
            "started": if attempt.started.is_null() { now() } else { attempt.started.clone() },
            "finished": now(),
            "errors": errors,
        });
        let summary = errors
            .iter()
            .take(3)
            .map(|e| match (&e.file, e.line) {
                (Some(f), Some(l)) => format!("{f}:{l}: {}", e.message),
                (Some(f), None) => format!("{f}: {}", e.message),
                _ => e.message.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        // The audit keeps every refused commit: retried until it lands.
        let cluster = &self.cluster;
        if durable::must("rejected revision", || cluster.create_revision(&revision))
            .await
            .is_err()
        {
            tracing::error!(revision = %name, "the Revision of a refused commit could not be recorded");
        }
        self.set_status(json!({
            "lastRevision": name,
            "message": format!(
                "commit {} was {:?}; the cluster stays on {}: {summary}",
                short(&attempt.commit),
                result,
                self.state.applied.as_deref().map(short).unwrap_or("nothing"),
            ),
        }))
        .await;
    }

    /// One sync attempt of `attempt.commit`.
    async fn attempt(&mut self, attempt: Attempt) -> Outcome {
        let span =
            tracing::info_span!("sync", source = %self.name, commit = %short(&attempt.commit));
        let outcome = self.attempt_in(attempt).instrument(span).await;
        tracing::debug!(source = %self.name, ?outcome, "sync attempt done");
        outcome
    }

    async fn attempt_in(&mut self, mut attempt: Attempt) -> Outcome {
        let started = now();
        attempt.started = started.clone();
        let snapshot = match self.snapshot(&attempt.commit).await {
            Ok(s) => s,
            Err(e) => {
                self.record_failure(
                    &attempt,
                    None,
                    RevisionResult::Failed,
                    vec![general(format!(
                        "commit {} cannot be read: {e}",
                        attempt.commit
                    ))],
                )
                .await;
                return Outcome::Failed;
            }
        };
        let desired = self.loader.load(&snapshot);
        let is_head_attempt = !matches!(
            attempt.trigger,
            TriggerKind::Rollback | TriggerKind::SelfHeal
        );
        let reject = |this: &mut Self, findings: Vec<RevisionFinding>| {
            if is_head_attempt {
                this.state.last_attempted = Some(attempt.commit.clone());
            }
            findings
        };
        if !desired.findings.is_empty() {
            let findings = reject(self, desired.findings.clone());
            self.record_failure(
                &attempt,
                Some(&snapshot),
                RevisionResult::Rejected,
                findings,
            )
            .await;
            return Outcome::Rejected;
        }
        if desired.objects.is_empty()
            && !self.state.inventory.is_empty()
            && !self.spec.allow_empty.unwrap_or(false)
        {
            let findings = reject(
                self,
                vec![general(format!(
                    "the commit would delete every object of source {} ({} objects); set spec.allowEmpty to allow it",
                    self.name,
                    self.state.inventory.len()
                ))],
            );
            self.record_failure(
                &attempt,
                Some(&snapshot),
                RevisionResult::Rejected,
                findings,
            )
            .await;
            return Outcome::Rejected;
        }
        let healing = self.state.healing.take();
        let mut plan = self.plan(&desired, &attempt.commit, healing.as_ref());
        if is_head_attempt
            && attempt.trigger != TriggerKind::Manual
            && let Ok(head) = self.head().await
            && head != attempt.commit
        {
            self.record_failure(
                &attempt,
                Some(&snapshot),
                RevisionResult::Superseded,
                vec![general(format!(
                    "commit {} arrived while this one was being checked",
                    short(&head)
                ))],
            )
            .await;
            return Outcome::Superseded;
        }
        let changes = plan.changes.clone();
        let mut revision = self.revision_body(&attempt, Some(&snapshot));
        let revision_name = revision["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let followed = desired
            .objects
            .iter()
            .any(|o| health::is_followed(&o.id.kind, &o.object));
        let health = if followed {
            RevisionHealth::Progressing
        } else {
            RevisionHealth::Healthy
        };
        revision["status"] = json!({
            "result": RevisionResult::Applied,
            "health": health,
            "started": started,
            "finished": now(),
            "changes": changes,
        });
        if !followed {
            revision["status"]["healthChanged"] = now();
        }
        let mut operations = std::mem::take(&mut plan.operations);
        operations.push(json!({"create": revision}));
        // The drift watchers learn what this commit wants before its writes reach them.
        self.watch_drift(Some(&desired));
        if let Err(e) = self.cluster.transaction(operations, false).await {
            self.watch_drift(None);
            let result = match &e {
                ClusterError::Refused {
                    code: 422 | 400 | 404,
                    ..
                } => RevisionResult::Rejected,
                _ => RevisionResult::Failed,
            };
            let findings = match &e {
                ClusterError::Refused {
                    causes, message, ..
                } => plan.findings(causes, message),
                other => vec![general(other.to_string())],
            };
            if result == RevisionResult::Rejected && is_head_attempt {
                self.state.last_attempted = Some(attempt.commit.clone());
            }
            self.record_failure(&attempt, Some(&snapshot), result, findings)
                .await;
            return if result == RevisionResult::Rejected {
                Outcome::Rejected
            } else {
                Outcome::Failed
            };
        }
        if is_head_attempt {
            self.state.last_attempted = Some(attempt.commit.clone());
        }
        self.state.applied = Some(attempt.commit.clone());
        for id in &plan.pruned {
            self.state.inventory.remove(id);
        }
        self.state
            .inventory
            .extend(desired.objects.iter().map(|o| o.id.clone()));
        self.state.applied_desired = Some(desired);
        self.set_status(json!({
            "appliedCommit": attempt.commit,
            "lastRevision": revision_name,
            "sync": "Synced",
            "drift": [],
            "health": if followed { "Progressing" } else { "Healthy" },
            "message": format!("applied commit {} ({} changes)", short(&attempt.commit), changes.len()),
        }))
        .await;
        tracing::info!(revision = %revision_name, changes = changes.len(), pruned = plan.pruned.len(), "commit applied");
        if followed {
            self.follow_health(revision_name, attempt.commit.clone());
        }
        Outcome::Applied
    }

    /// The transaction for `desired`: objects that changed since the applied commit (or are not
    /// live yet), and prunes of objects the commit no longer has; with the audit's per-object
    /// changes (diffs of the manifests). When `healing`, only the drifted objects, diffed
    /// against their live state.
    fn plan(
        &self,
        desired: &Desired,
        commit: &str,
        healing: Option<&HashMap<ObjectId, Value>>,
    ) -> Plan {
        let previous: HashMap<&ObjectId, &Arc<Value>> = self
            .state
            .applied_desired
            .iter()
            .flat_map(|d| d.objects.iter().map(|o| (&o.id, &o.object)))
            .collect();
        let mut plan = Plan::default();
        for o in &desired.objects {
            let before = previous.get(&o.id).copied();
            let live = self.state.inventory.contains(&o.id);
            let (before, wanted) = match healing {
                Some(drifted) => match drifted.get(&o.id) {
                    Some(now) => (Some(now.clone()).filter(|v| !v.is_null()), true),
                    None => (None, false),
                },
                None => {
                    let same =
                        before.is_some_and(|b| Arc::ptr_eq(b, &o.object) || **b == *o.object);
                    (before.map(|b| (**b).clone()), !(same && live))
                }
            };
            if !wanted {
                continue;
            }
            let mut object = (*o.object).clone();
            object["metadata"]["annotations"][COMMIT_ANNOTATION] = json!(commit);
            plan.operations.push(json!({"apply": object}));
            plan.sources
                .push(Some((o.file.clone(), o.line, o.id.to_string())));
            let exists = live || (healing.is_some() && before.is_some());
            plan.changes.push(change(
                &o.id,
                if exists {
                    ChangeAction::Update
                } else {
                    ChangeAction::Create
                },
                before.as_ref(),
                Some(&o.object),
            ));
        }
        if self.spec.prune.unwrap_or(true) && healing.is_none() {
            let wanted: HashSet<&ObjectId> = desired.objects.iter().map(|o| &o.id).collect();
            for id in &self.state.inventory {
                if wanted.contains(id) {
                    continue;
                }
                plan.operations.push(json!({"delete": {
                    "apiVersion": id.api_version, "kind": id.kind,
                    "namespace": id.namespace, "name": id.name,
                }}));
                plan.sources.push(None);
                plan.pruned.push(id.clone());
                let before = previous.get(id).map(|b| Value::clone(b));
                plan.changes
                    .push(change(id, ChangeAction::Delete, before.as_ref(), None));
            }
        }
        plan
    }

    /// Follows the health of an applied revision until Healthy, Degraded or the timeout.
    fn follow_health(&mut self, revision: String, commit: String) {
        if let Some(previous) = self.state.health.take() {
            previous.cancel();
        }
        let cancel = CancellationToken::new();
        self.state.health = Some(cancel.clone());
        let cluster = self.cluster.clone();
        // Only the kinds with a health rule are looked at: one list per kind, not one read
        // per object.
        let objects: Vec<ObjectId> = self
            .state
            .applied_desired
            .iter()
            .flat_map(|d| d.objects.iter())
            .filter(|o| health::is_followed(&o.id.kind, &o.object))
            .map(|o| o.id.clone())
            .collect();
        let settings = self.settings.clone();
        let source = self.name.clone();
        let auto_rollback = self.spec.auto_rollback.unwrap_or(false);
        let triggers = self.triggers.clone();
        let kinds: Vec<(String, String)> = objects
            .iter()
            .map(|id| (id.api_version.clone(), id.kind.clone()))
            .collect();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + settings.health_timeout;
            let verdict = loop {
                let mut worst = Health::Healthy;
                let live = cluster.live(&source, &kinds).await;
                for id in &objects {
                    let judged = match &live {
                        Ok(live) => match live.get(id) {
                            Some(object) => health::assess(object),
                            None => Health::Degraded(format!("{id} is missing")),
                        },
                        Err(e) => Health::Progressing(e.to_string()),
                    };
                    match (&worst, judged) {
                        (Health::Degraded(_), _) => {}
                        (_, Health::Degraded(why)) => {
                            worst = Health::Degraded(format!("{id}: {why}"))
                        }
                        (Health::Healthy, Health::Progressing(why)) => {
                            worst = Health::Progressing(format!("{id}: {why}"));
                        }
                        _ => {}
                    }
                }
                match worst {
                    Health::Progressing(why) if tokio::time::Instant::now() >= deadline => {
                        break Health::Degraded(format!(
                            "not healthy after {}s: {why}",
                            settings.health_timeout.as_secs()
                        ));
                    }
                    Health::Progressing(_) => {}
                    done => break done,
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(settings.health_interval) => {}
                }
            };
            let (health, message) = match &verdict {
                Health::Healthy => ("Healthy", format!("commit {} is healthy", short(&commit))),
                Health::Degraded(why) => (
                    "Degraded",
                    format!("commit {} is degraded: {why}", short(&commit)),
                ),
                Health::Progressing(why) => ("Progressing", why.clone()),
            };
            let mut patch = json!({"status": {"health": health, "healthChanged": now()}});
            if let Health::Degraded(why) = &verdict {
                patch["status"]["errors"] = json!([{"message": why}]);
            }
            if durable::must("revision health", || {
                cluster.patch_revision(&revision, &patch)
            })
            .await
            .is_err()
            {
                tracing::error!(%revision, health, "the health of a revision could not be recorded");
            }
            durable::once(
                "source health",
                cluster.patch_source(
                    &source,
                    &json!({"status": {"health": health, "message": message}}),
                    true,
                ),
            )
            .await;
            tracing::info!(%revision, health, "revision health");
            if matches!(verdict, Health::Healthy)
                && triggers.send(Trigger::DriftCheck).await.is_err()
            {
                tracing::debug!("the worker has stopped; no drift check");
            }
            if let Health::Degraded(why) = verdict
                && auto_rollback
                && let Some(good) = last_healthy(&cluster, &source, &commit).await
            {
                tracing::warn!(%revision, to = %good, "auto-rollback of a degraded revision");
                let rollback = Trigger::Rollback {
                    request: format!("auto-{revision}"),
                    commit: good,
                    reason: format!("auto-rollback: {revision} is Degraded ({why})"),
                    by: "ferry (auto-rollback)".into(),
                };
                if triggers.send(rollback).await.is_err() {
                    tracing::warn!(%revision, "the worker has stopped; the auto-rollback was not made");
                }
            }
        });
    }

    /// Compares the live objects with the applied commit; with self-heal, reverts the drift.
    async fn check_drift(&mut self) {
        let Some(desired) = self.state.applied_desired.clone() else {
            return;
        };
        let Some(commit) = self.state.applied.clone() else {
            return;
        };
        let mut drifted = Vec::new();
        let mut healing = HashMap::new();
        let kinds: Vec<(String, String)> = desired
            .objects
            .iter()
            .map(|o| (o.id.api_version.clone(), o.id.kind.clone()))
            .collect();
        let Ok(live) = self.cluster.live(&self.name, &kinds).await else {
            return;
        };
        for o in &desired.objects {
            let fields = match live.get(&o.id) {
                Some(live) => {
                    let fields = drift::differences(&o.object, live);
                    if !fields.is_empty() {
                        healing.insert(o.id.clone(), drift::project(&o.object, live));
                    }
                    fields
                }
                None => {
                    healing.insert(o.id.clone(), Value::Null);
                    vec![String::new()]
                }
            };
            if !fields.is_empty() {
                drifted.push(json!({
                    "apiVersion": o.id.api_version, "kind": o.id.kind,
                    "namespace": o.id.namespace, "name": o.id.name, "fields": fields,
                }));
            }
        }
        if drifted.is_empty() {
            self.set_status(json!({"sync": "Synced", "drift": []}))
                .await;
            return;
        }
        self.set_status(json!({"sync": "OutOfSync", "drift": drifted}))
            .await;
        if self.spec.self_heal.unwrap_or(false) {
            self.state.healing = Some(healing);
            let attempt = Attempt {
                started: Value::Null,
                commit,
                trigger: TriggerKind::SelfHeal,
                request: None,
                by: None,
                reason: Some(format!("{} objects drifted", drifted.len())),
            };
            self.attempt(attempt).await;
        }
    }
}

/// A Source's `spec.interval` in Go's form (`15s`, `1m30s`, `500ms`); `None` when malformed
/// or zero.
pub fn parse_interval(text: &str) -> Option<Duration> {
    ferry_schema::duration::parse(text)
        .ok()
        .filter(|d| !d.is_zero())
}

/// The newest commit of `source` whose applied revision became Healthy, other than `not`.
async fn last_healthy(cluster: &Cluster, source: &str, not: &str) -> Option<String> {
    let revisions = cluster.revisions(Some(source)).await.ok()?;
    revisions
        .iter()
        .rev()
        .filter(|r| r["status"]["result"] == "Applied" && r["status"]["health"] == "Healthy")
        .filter_map(|r| r["spec"]["commit"].as_str())
        .find(|c| *c != not)
        .map(str::to_owned)
}

/// Triggers waiting to be handled, coalesced: requests (`ferry sync`, rollbacks) in order and
/// first, then one look at the head (a webhook's if any), then one drift check.
#[derive(Debug, Default)]
struct Pending {
    requests: std::collections::VecDeque<Trigger>,
    look: Option<Trigger>,
    drift: bool,
}

impl Pending {
    fn add(&mut self, trigger: Trigger) {
        match trigger {
            Trigger::DriftCheck => self.drift = true,
            Trigger::Poll { webhook: true } => self.look = Some(trigger),
            Trigger::Watch | Trigger::Poll { .. } => {
                if self.look.is_none() {
                    self.look = Some(trigger);
                }
            }
            request => self.requests.push_back(request),
        }
    }

    fn is_empty(&self) -> bool {
        self.requests.is_empty() && self.look.is_none() && !self.drift
    }

    fn next(&mut self) -> Option<Trigger> {
        if let Some(r) = self.requests.pop_front() {
            return Some(r);
        }
        if let Some(look) = self.look.take() {
            return Some(look);
        }
        std::mem::take(&mut self.drift).then_some(Trigger::DriftCheck)
    }
}

/// What an attempt is about.
#[derive(Debug, Clone)]
struct Attempt {
    commit: String,
    trigger: TriggerKind,
    request: Option<String>,
    by: Option<String>,
    reason: Option<String>,
    /// When the attempt started (set by [`SourceWorker::attempt`]).
    started: Value,
}

/// A transaction and where each operation came from.
#[derive(Debug, Default)]
struct Plan {
    operations: Vec<Value>,
    /// Per operation: the file, line and object of an apply; `None` for a prune.
    sources: Vec<Option<(String, usize, String)>>,
    pruned: Vec<ObjectId>,
    /// The audit's per-object changes.
    changes: Vec<ObjectChange>,
}

impl Plan {
    /// The apiserver's refusal as findings with file, line, object and field.
    fn findings(&self, causes: &[(String, String)], message: &str) -> Vec<RevisionFinding> {
        if causes.is_empty() {
            return vec![general(message)];
        }
        causes
            .iter()
            .map(|(field, text)| {
                let index = field
                    .strip_prefix("operations[")
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(i, rest)| {
                        Some((i.parse::<usize>().ok()?, rest.trim_start_matches('.')))
                    });
                match index.and_then(|(i, rest)| Some((self.sources.get(i)?.as_ref()?, rest))) {
                    Some(((file, line, object), rest)) => RevisionFinding {
                        file: Some(file.clone()),
                        line: Some(*line as u32),
                        column: None,
                        object: Some(object.clone()),
                        path: (!rest.is_empty()).then(|| pointer_of(rest)),
                        message: text.clone(),
                    },
                    None => general(text.clone()),
                }
            })
            .collect()
    }
}

/// One object's change for the audit, with a diff of its manifest (Secret values redacted).
fn change(
    id: &ObjectId,
    action: ChangeAction,
    before: Option<&Value>,
    after: Option<&Value>,
) -> ObjectChange {
    ObjectChange {
        action,
        object: ObjectRef {
            api_version: id.api_version.clone(),
            kind: id.kind.clone(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
        },
        diff: Some(diff::unified(&id.slashed(), before, after)),
    }
}

/// The first 12 characters of a commit id.
pub fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_fields_become_pointers() {
        assert_eq!(
            pointer_of("spec.template.spec.containers[0].image"),
            "/spec/template/spec/containers/0/image"
        );
        assert_eq!(pointer_of("metadata.name"), "/metadata/name");
    }

    #[test]
    fn refusals_name_file_line_and_object() {
        let plan = Plan {
            operations: vec![json!({}), json!({})],
            sources: vec![
                None,
                Some(("apps/web.yaml".into(), 7, "Deployment demo/web".into())),
            ],
            pruned: Vec::new(),
            changes: Vec::new(),
        };
        let f = plan.findings(
            &[("operations[1].spec.replicas".into(), "Invalid value".into())],
            "refused",
        );
        assert_eq!(f[0].file.as_deref(), Some("apps/web.yaml"));
        assert_eq!(f[0].line, Some(7));
        assert_eq!(f[0].path.as_deref(), Some("/spec/replicas"));
        assert_eq!(f[0].object.as_deref(), Some("Deployment demo/web"));
    }
}
