//! Writing the audit: the `Revision` of each attempt and the Source's status.

use ferry_schema::ferry::{
    RevisionFinding, RevisionHealth, RevisionResult, RevisionSpec, Trigger as TriggerKind,
};
use serde_json::{Value, json};

use super::super::checkout::Snapshot;
use super::super::cluster::{FERRY_NAMESPACE, REVISION_LABEL};
use super::super::durable;
use super::attempt::Attempt;
use super::{COMMIT_LABEL, REQUEST_LABEL, SourceWorker, short};

/// The time now, as the audit writes it.
pub(super) fn now() -> Value {
    json!(
        jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    )
}

/// A finding without a file.
pub(super) fn general(message: impl Into<String>) -> RevisionFinding {
    RevisionFinding {
        message: message.into(),
        ..RevisionFinding::default()
    }
}

impl SourceWorker {
    pub(super) async fn set_status(&self, patch: Value) {
        // A failed status write is repaired by the next one; the audit is what must be right.
        durable::once(
            "source status",
            self.cluster
                .patch_source(&self.name, &json!({"status": patch}), true),
        )
        .await;
    }

    pub(super) fn revision_name(&mut self) -> String {
        let n = self.state.next_sequence;
        self.state.next_sequence += 1;
        format!("{}-{n:06}", self.name)
    }

    pub(super) fn revision_body(
        &mut self,
        attempt: &Attempt,
        snapshot: Option<&Snapshot>,
    ) -> Value {
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
    pub(super) async fn record_failure(
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
}
