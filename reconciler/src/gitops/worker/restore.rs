//! Rebuilding a worker's state after a restart, from the audit trail and the live objects.

use super::super::cluster::{ClusterError, sequence};
use super::state::{Phase, State};
use super::{REQUEST_LABEL, SourceWorker};

impl SourceWorker {
    /// Rebuilds the state from the audit and the live objects (after a restart or crash).
    pub(super) async fn load_state(&mut self) -> Result<State, ClusterError> {
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
                state.phase = Phase::Pinned {
                    commit: c.to_owned(),
                    head: h.to_owned(),
                };
            }
        }
        state.inventory = self
            .cluster
            .inventory(&self.name)
            .await?
            .into_iter()
            .collect();
        if let Some(applied) = &state.applied
            && let Ok(snapshot) = self.snapshot(applied).await
        {
            let desired = self.loader.load(&snapshot);
            if desired.findings.is_empty() {
                state.applied_desired = Some(desired);
            }
        }
        Ok(state)
    }
}
