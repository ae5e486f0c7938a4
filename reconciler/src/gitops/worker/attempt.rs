//! One sync attempt of one commit: load, validate, plan, refuse or apply in one transaction
//! with its `Revision`, then follow health.

use ferry_schema::ferry::{RevisionHealth, RevisionResult, Trigger as TriggerKind};
use serde_json::{Value, json};
use tracing::Instrument;

use super::super::cluster::ClusterError;
use super::super::health;
use super::super::manifests::ObjectId;
use super::record::{general, now};
use super::state::Outcome;
use super::{SourceWorker, short};

/// What an attempt is about.
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    pub(super) commit: String,
    pub(super) trigger: TriggerKind,
    pub(super) request: Option<String>,
    pub(super) by: Option<String>,
    pub(super) reason: Option<String>,
    /// When the attempt started (set by [`SourceWorker::attempt`]).
    pub(super) started: Value,
}

impl Attempt {
    /// An attempt of `commit` that no request asked for.
    pub(super) fn new(commit: String, trigger: TriggerKind) -> Attempt {
        Attempt {
            commit,
            trigger,
            request: None,
            by: None,
            reason: None,
            started: Value::Null,
        }
    }
}

impl SourceWorker {
    /// One sync attempt of `attempt.commit`.
    pub(super) async fn attempt(&mut self, attempt: Attempt) -> Outcome {
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
        // Refused before anything is sent: the commit's own findings, or a commit that would
        // empty the source without leave.
        let refusal = if !desired.findings.is_empty() {
            Some(desired.findings.clone())
        } else if desired.objects.is_empty()
            && !self.state.inventory.is_empty()
            && !self.spec.allow_empty.unwrap_or(false)
        {
            Some(vec![general(format!(
                "the commit would delete every object of source {} ({} objects); set spec.allowEmpty to allow it",
                self.name,
                self.state.inventory.len()
            ))])
        } else {
            None
        };
        if let Some(findings) = refusal {
            if is_head_attempt {
                self.state.last_attempted = Some(attempt.commit.clone());
            }
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
        // The audit's per-object changes move into the Revision (no copy is kept: with a diff
        // per object they are the largest part of a big commit).
        let changes = std::mem::take(&mut plan.changes);
        let change_count = changes.len();
        // Health follows what this commit changed (and what an earlier commit's rollout has
        // not settled yet): a commit of ConfigMaps is Healthy at once, not after every
        // Deployment of the repository is listed.
        let changed: std::collections::HashSet<ObjectId> = changes
            .iter()
            .map(|c| ObjectId {
                api_version: c.object.api_version.clone(),
                kind: c.object.kind.clone(),
                namespace: c.object.namespace.clone(),
                name: c.object.name.clone(),
            })
            .collect();
        let unsettled = self.unsettled();
        let to_follow: Vec<ObjectId> = desired
            .objects
            .iter()
            .filter(|o| changed.contains(&o.id) || unsettled.contains(&o.id))
            .filter(|o| health::is_followed(&o.id.kind, &o.object))
            .map(|o| o.id.clone())
            .collect();
        let mut revision = self.revision_body(&attempt, Some(&snapshot));
        let revision_name = revision["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let followed = !to_follow.is_empty();
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
            "changes": serde_json::to_value(changes).unwrap_or_default(),
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
            "message": format!("applied commit {} ({} changes)", short(&attempt.commit), change_count),
        }))
        .await;
        tracing::info!(revision = %revision_name, changes = change_count, pruned = plan.pruned.len(), "commit applied");
        if followed {
            self.follow_health(revision_name, attempt.commit.clone(), to_follow);
        }
        Outcome::Applied
    }
}
