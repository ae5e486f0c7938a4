//! Following the head: reading the source (head, snapshots, commit names) and syncing each new
//! head, unless a rollback pinned the source or a failed head is backing off.

use ferry_schema::ferry::Trigger as TriggerKind;
use serde_json::json;
use tokio::time::Instant;

use super::super::checkout::Snapshot;
use super::super::durable;
use super::SourceWorker;
use super::attempt::Attempt;
use super::record::now;
use super::state::{Outcome, Phase};

impl SourceWorker {
    /// Looks at the head and syncs it if it is new (and the source is not pinned to it).
    pub(super) async fn follow_head(&mut self, kind: TriggerKind) {
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
        if let Phase::Pinned { head: pinned, .. } = &self.state.phase {
            if *pinned == head {
                return;
            }
            // A newer commit arrived: the rollback pin ends.
            self.state.phase = Phase::Following;
            self.set_status(json!({"pinnedCommit": null, "pinnedHead": null}))
                .await;
        }
        if self.state.last_attempted.as_deref() == Some(head.as_str())
            || !self.state.phase.allows(&head, Instant::now())
        {
            return;
        }
        let mut outcome = self.attempt(Attempt::new(head.clone(), kind)).await;
        self.state.phase = self
            .state
            .phase
            .after_attempt(&head, outcome, Instant::now());
        // Superseded: the head moved while this one was checked; go straight to the new one.
        let mut rounds = 0;
        while outcome == Outcome::Superseded && rounds < 8 {
            rounds += 1;
            let Ok(head) = self.head().await else { return };
            outcome = self.attempt(Attempt::new(head.clone(), kind)).await;
            self.state.phase = self
                .state
                .phase
                .after_attempt(&head, outcome, Instant::now());
        }
    }

    /// A full commit id from a prefix, branch or tag.
    pub(super) async fn resolve_commit(&self, commit: &str) -> Result<String, String> {
        let checkout = self.checkout.clone();
        let commit = commit.to_owned();
        tokio::task::spawn_blocking(move || checkout.resolve(&commit))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    pub(super) async fn snapshot(&self, commit: &str) -> Result<Snapshot, String> {
        let checkout = self.checkout.clone();
        let commit = commit.to_owned();
        let known = self.loader.known();
        tokio::task::spawn_blocking(move || checkout.snapshot(&commit, &known))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    pub(super) async fn head(&self) -> Result<String, String> {
        let checkout = self.checkout.clone();
        tokio::task::spawn_blocking(move || {
            checkout.fetch()?;
            checkout.head()
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
    }
}
