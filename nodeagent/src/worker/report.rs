//! What a pod worker reports: the status the kubelet would write now (phase, conditions,
//! container statuses with their waiting reasons), written only when it changed.

use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use super::status::{ContainerReport, PodReport};
use super::{PodState, PodWorker, Slot, name_of};
use crate::runtime::ContainerState;

impl PodWorker {
    /// What the status should say now.
    pub async fn pod_report(&self) -> PodReport {
        let spec = self.spec();
        let (sandbox, initialized) = match &self.state {
            PodState::Pending | PodState::Gone => (None, false),
            PodState::Initializing { sandbox, .. } => (Some(sandbox), false),
            PodState::Running { sandbox } | PodState::Finished { sandbox } => (Some(sandbox), true),
        };
        let mut init = Vec::new();
        for (i, c) in spec.init_containers.iter().flatten().enumerate() {
            init.push(self.container_report(c, &self.init[i]).await);
        }
        let mut containers = Vec::new();
        for (i, c) in spec.containers.iter().enumerate() {
            let mut r = self.container_report(c, &self.containers[i]).await;
            if !initialized && r.status.is_none() {
                // No sandbox yet (volumes being made): ContainerCreating; init containers
                // running: PodInitializing.
                let reason = match sandbox {
                    None => "ContainerCreating",
                    Some(_) => "PodInitializing",
                };
                r.waiting = Some((reason.into(), String::new()));
            }
            containers.push(r);
        }
        PodReport {
            pod_ip: sandbox.map(|s| s.ip.clone()),
            host_ip: self.site.host_ip.clone(),
            start_time: self.start_time.clone(),
            init,
            initialized,
            containers,
            restart_policy: self.restart_policy(),
            runtime: self.site.runtime.id_scheme(),
        }
    }

    pub(super) async fn container_report(
        &self,
        c: &core::Container,
        slot: &Slot,
    ) -> ContainerReport {
        let status = match &slot.id {
            Some(id) => self.site.runtime.container_status(id).await.ok(),
            None => None,
        };
        let ready = match (&slot.id, &status) {
            (Some(id), Some(s)) if matches!(s.state, ContainerState::Running { .. }) => self
                .site
                .runtime
                .readiness(id)
                .map_or(slot.probes.ready(), |(ready, _)| ready),
            _ => false,
        };
        let waiting = match (&slot.waiting, slot.restart_at) {
            (Some(w), _) => Some((w.reason.to_owned(), w.message.clone())),
            (None, Some(_)) => Some((
                "CrashLoopBackOff".to_owned(),
                format!(
                    "back-off restarting failed container {} in pod {}",
                    c.name,
                    name_of(&self.pod)
                ),
            )),
            (None, None) => None,
        };
        ContainerReport {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            status,
            ready: ready && waiting.is_none(),
            restarts: slot.restarts,
            waiting,
            last: slot.last.clone(),
        }
    }

    /// Writes the status if it changed. `false` when the write failed: the status the
    /// apiserver holds is stale, and the caller retries (nothing else may wake the worker).
    pub(super) async fn report(&mut self) -> bool {
        let previous: Value = match serde_json::from_str(&self.last_status) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(pod = %name_of(&self.pod), error = %e, "the last status written cannot be read back; writing it whole");
                Value::Null
            }
        };
        let status = self.pod_report().await.to_json(&previous);
        let written = status.to_string();
        if written == self.last_status {
            return true;
        }
        let api: Api<core::Pod> = Api::namespaced(
            self.site.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": status})),
            )
            .await
        {
            Ok(_) => {
                self.last_status = written;
                true
            }
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::debug!(pod = %name_of(&self.pod), "the pod is gone; its status is not written");
                true
            }
            Err(e) => {
                tracing::warn!(pod = %name_of(&self.pod), error = %e, "the pod's status could not be written; retrying with back-off");
                false
            }
        }
    }
}

/// When a failed status write is tried again: after 0.5 s, doubling to 30 s while it keeps
/// failing; forgotten once a write succeeds.
#[derive(Default)]
pub(super) struct ReportRetry(Option<backon::ExponentialBackoff>);

impl ReportRetry {
    /// The delay before the next try, given whether the last write succeeded.
    pub(super) fn after(&mut self, written: bool) -> Option<Duration> {
        use backon::{BackoffBuilder, ExponentialBuilder};
        if written {
            self.0 = None;
            return None;
        }
        let delays = self.0.get_or_insert_with(|| {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(500))
                .with_max_delay(Duration::from_secs(30))
                .without_max_times()
                .build()
        });
        Some(delays.next().unwrap_or(Duration::from_secs(30)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_status_write_is_retried_sooner_then_later_and_forgotten_once_written() {
        let mut retry = ReportRetry::default();
        assert_eq!(retry.after(true), None);
        let delays: Vec<Duration> = (0..9).filter_map(|_| retry.after(false)).collect();
        assert_eq!(delays[0], Duration::from_millis(500));
        assert_eq!(delays[1], Duration::from_secs(1));
        assert!(delays.windows(2).all(|w| w[0] <= w[1]), "{delays:?}");
        assert_eq!(delays[8], Duration::from_secs(30));
        // A write that succeeds starts the next failure at the shortest delay again.
        assert_eq!(retry.after(true), None);
        assert_eq!(retry.after(false), Some(Duration::from_millis(500)));
    }
}
