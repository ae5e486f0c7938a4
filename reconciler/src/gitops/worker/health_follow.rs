//! Following an applied revision's health to Healthy or Degraded (and auto-rollback).

use std::collections::{HashMap, HashSet};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::super::cluster::Cluster;
use super::super::durable;
use super::super::health::{self, Health};
use super::super::manifests::ObjectId;
use super::record::now;
use super::{SourceWorker, Trigger, short};

impl SourceWorker {
    /// The objects the last health follower had not seen settle (it was cancelled by a newer
    /// commit, or is still following).
    pub(super) fn unsettled(&self) -> HashSet<ObjectId> {
        self.state
            .unsettled
            .lock()
            .map(|u| u.1.clone())
            .unwrap_or_default()
    }

    /// Follows the health of an applied revision (the `objects` it changed or that are still
    /// settling, all with a health rule) until Healthy, Degraded or the timeout.
    pub(super) fn follow_health(
        &mut self,
        revision: String,
        commit: String,
        objects: Vec<ObjectId>,
    ) {
        if let Some(previous) = self.state.health.take() {
            previous.cancel();
        }
        let cancel = CancellationToken::new();
        self.state.health = Some(cancel.clone());
        let cluster = self.cluster.clone();
        let unsettled = self.state.unsettled.clone();
        let generation = match unsettled.lock() {
            Ok(mut u) => {
                u.0 += 1;
                u.1 = objects.iter().cloned().collect();
                u.0
            }
            Err(_) => 0,
        };
        let settings = self.settings.clone();
        let source = self.name.clone();
        let auto_rollback = self.spec.auto_rollback.unwrap_or(false);
        let triggers = self.triggers.clone();
        let kinds: Vec<(String, String)> = objects
            .iter()
            .map(|id| (id.api_version.clone(), id.kind.clone()))
            .collect();
        tokio::spawn(async move {
            let wanted: HashSet<&ObjectId> = objects.iter().collect();
            let deadline = tokio::time::Instant::now() + settings.health_timeout;
            let verdict = loop {
                let mut worst = Health::Healthy;
                // Each live object is judged as its page arrives; only the verdicts are kept.
                let mut judged: HashMap<&ObjectId, Health> = HashMap::new();
                let live = cluster
                    .visit_live(&source, &kinds, |id, object| {
                        if let Some(id) = wanted.get(&id) {
                            judged.insert(*id, health::assess(&object));
                        }
                    })
                    .await;
                for id in &objects {
                    let judged = match &live {
                        Ok(()) => judged
                            .remove(id)
                            .unwrap_or_else(|| Health::Degraded(format!("{id} is missing"))),
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
            // Settled (either way): nothing of it carries over to the next commit.
            if let Ok(mut u) = unsettled.lock()
                && u.0 == generation
            {
                u.1.clear();
            }
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
