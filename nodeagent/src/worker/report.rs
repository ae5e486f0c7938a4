//! What a pod worker reports: the status the kubelet would write now (phase, conditions,
//! container statuses with their waiting reasons), written only when it changed.

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

    /// Writes the status if it changed.
    pub(super) async fn report(&mut self) {
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
            return;
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
            Ok(_) => self.last_status = written,
            Err(kube::Error::Api(e)) if e.code == 404 => {
                tracing::debug!(pod = %name_of(&self.pod), "the pod is gone; its status is not written");
            }
            Err(e) => {
                tracing::warn!(pod = %name_of(&self.pod), error = %e, "the pod's status could not be written; retried on the next change")
            }
        }
    }
}
