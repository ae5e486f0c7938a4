//! Drift: publishing what the applied commit wants to the drift watchers, and the periodic
//! comparison of live objects with it (reverted by a self-heal attempt when asked).

use std::collections::HashMap;
use std::sync::Arc;

use ferry_schema::ferry::Trigger as TriggerKind;
use serde_json::{Value, json};

use super::super::drift;
use super::super::drift_watch;
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

    /// Compares the live objects with the applied commit; with self-heal, reverts the drift.
    pub(super) async fn check_drift(&mut self) {
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
