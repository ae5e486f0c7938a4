//! Drift: publishing what the applied commit wants to the drift watchers, and the periodic
//! comparison of live objects with it (reverted by a self-heal attempt when asked). The
//! comparison only reads, so a new head arriving meanwhile drops it and is synced first.

use std::collections::HashMap;
use std::sync::Arc;

use ferry_schema::ferry::Trigger as TriggerKind;
use serde_json::{Value, json};

use super::super::drift;
use super::super::drift_watch;
use super::super::manifest::Manifest;
use super::super::manifests::{Desired, ObjectId};
use super::SourceWorker;
use super::attempt::Attempt;

impl SourceWorker {
    /// Publishes what the applied commit wants to the drift watchers, starting a watcher for
    /// each kind not yet watched.
    pub(super) fn watch_drift(&mut self, desired: Option<&Desired>) {
        let Some(desired) = desired.or(self.state.applied_desired.as_ref()) else {
            return;
        };
        let wanted: HashMap<ObjectId, Manifest> = desired
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

    /// Compares the live objects with the applied commit (reads only, so it may be dropped
    /// half-way when a new head arrives); `None` when there is nothing to compare or the
    /// cluster did not answer.
    pub(super) async fn find_drift(&self) -> Option<Drift> {
        let desired = self.state.applied_desired.clone()?;
        let commit = self.state.applied.clone()?;
        let mut drifted = Vec::new();
        let mut healing = HashMap::new();
        let kinds: Vec<(String, String)> = desired
            .objects
            .iter()
            .map(|o| (o.id.api_version.clone(), o.id.kind.clone()))
            .collect();
        // Each live object is compared as its page arrives; only the differences are kept.
        let index: HashMap<&ObjectId, &Manifest> =
            desired.objects.iter().map(|o| (&o.id, &o.object)).collect();
        let mut found: HashMap<ObjectId, (Vec<String>, Value)> = HashMap::new();
        self.cluster
            .visit_live(&self.name, &kinds, |id, live| {
                let Some(manifest) = index.get(&id) else {
                    return;
                };
                let want = manifest.value();
                let fields = drift::differences(&want, &live);
                let healed = if fields.is_empty() {
                    Value::Null
                } else {
                    drift::project(&want, &live)
                };
                found.insert(id, (fields, healed));
            })
            .await
            .ok()?;
        for o in &desired.objects {
            let fields = match found.remove(&o.id) {
                Some((fields, healed)) => {
                    if !fields.is_empty() {
                        healing.insert(o.id.clone(), healed);
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
        Some(Drift {
            commit,
            drifted,
            healing,
        })
    }

    /// Records what [`find_drift`](Self::find_drift) found; with self-heal, reverts it.
    pub(super) async fn act_on_drift(&mut self, found: Drift) {
        let Drift {
            commit,
            drifted,
            healing,
        } = found;
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

/// What a drift check found.
#[derive(Debug)]
pub(super) struct Drift {
    /// The applied commit it was compared with.
    commit: String,
    /// The drifted objects and fields, as the Source's status lists them.
    drifted: Vec<Value>,
    /// Each drifted object's live state cut to the manifest's fields (null when missing).
    healing: HashMap<ObjectId, Value>,
}
