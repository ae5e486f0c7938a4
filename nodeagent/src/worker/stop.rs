//! How a pod worker stops what it runs: each container within the grace period (its preStop
//! hook first, then the runtime's stop with what is left), the whole pod when it is deleted
//! (app containers in parallel, then what is left of the init containers, the sandbox, the
//! volumes), and a graceful deletion finished with a grace period of 0, as the kubelet does.

use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use kube::api::Api;
use tokio::time::Instant;

use super::{PodState, PodWorker, hooks, name_of, volumes};
use crate::runtime::RuntimeError;

impl PodWorker {
    /// The pod's termination grace period.
    /// The grace period for stopping containers: the deletion's, once the pod is being
    /// deleted, else the pod's `terminationGracePeriodSeconds`.
    pub(super) fn grace(&self) -> Duration {
        let seconds = self
            .pod
            .metadata
            .deletion_grace_period_seconds
            .filter(|_| self.pod.metadata.deletion_timestamp.is_some())
            .or(self.spec().termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(seconds.max(0) as u64)
    }

    /// Deletes the stopped pod with a grace period of 0 (this uid only), as the kubelet
    /// finishes a graceful deletion; retried with back-off while the apiserver cannot be
    /// reached.
    pub(super) async fn finish_deletion(&self) {
        use backon::{BackoffBuilder, ExponentialBuilder};
        let api: Api<core::Pod> = Api::namespaced(
            self.site.client.clone(),
            self.pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let name = self.pod.metadata.name.clone().unwrap_or_default();
        let params = kube::api::DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(kube::api::Preconditions {
                uid: self.pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..kube::api::DeleteParams::default()
        };
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_max_times(8)
            .build();
        loop {
            match api.delete(&name, &params).await {
                Ok(_) => {
                    tracing::debug!(pod = %name_of(&self.pod), "deleted after stopping");
                    return;
                }
                // Gone already, or another pod of that name now: nothing left to do.
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => return,
                Err(e) => match delays.next() {
                    Some(delay) => {
                        tracing::warn!(pod = %name_of(&self.pod), error = %e, "the stopped pod could not be deleted; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => {
                        tracing::error!(pod = %name_of(&self.pod), error = %e, "the stopped pod could not be deleted; it stays Terminating until its next change");
                        return;
                    }
                },
            }
        }
    }

    /// Stops container `id` (`c`) within `grace`: its preStop hook first, then the runtime's
    /// stop with what is left of the grace period.
    pub(super) async fn stop_gracefully(
        &self,
        c: Option<&core::Container>,
        id: &str,
        ip: &str,
        grace: Duration,
    ) -> Result<(), RuntimeError> {
        let deadline = Instant::now() + grace;
        let handler = c.and_then(|c| c.lifecycle.as_ref()?.pre_stop.as_ref().map(|h| (c, h)));
        if let Some((c, handler)) = handler
            && let Some(hook) = hooks::of(handler, c)
            && let Err(message) = hooks::run(&hook, self.site.runtime.as_ref(), id, ip, grace).await
        {
            self.event(
                "Warning",
                "FailedPreStopHook",
                format!("PreStopHook failed: {message}"),
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        self.site.runtime.stop_container(id, left).await
    }

    /// Stops and removes everything of the pod.
    pub(super) async fn tear_down(&mut self) {
        let sandbox = match std::mem::replace(&mut self.state, PodState::Gone) {
            PodState::Initializing { sandbox, .. }
            | PodState::Running { sandbox }
            | PodState::Finished { sandbox } => sandbox,
            PodState::Pending | PodState::Gone => return,
        };
        let grace = self.grace();
        let spec = self.spec();
        for c in &spec.containers {
            self.event(
                "Normal",
                "Killing",
                format!("Stopping container {}", c.name),
            );
        }
        // The app containers in parallel (each preStop hook, then the stop, within the one
        // grace period), then what is left of the init containers.
        let this: &PodWorker = self;
        let stops = this.containers.iter().enumerate().filter_map(|(i, slot)| {
            let id = slot.id.clone()?;
            let c = spec.containers.get(i);
            let ip = sandbox.ip.clone();
            Some(async move {
                if let Err(e) = this.stop_gracefully(c, &id, &ip, grace).await {
                    tracing::warn!(container = %id, error = %e, "a container could not be stopped");
                }
            })
        });
        futures::future::join_all(stops).await;
        for slot in &self.init {
            if let Some(id) = &slot.id
                && let Err(e) = self.site.runtime.stop_container(id, grace).await
            {
                tracing::warn!(container = %id, error = %e, "a container could not be stopped");
            }
        }
        if let Err(e) = self.site.runtime.stop_pod_sandbox(&sandbox.id).await {
            tracing::warn!(sandbox = %sandbox.id, error = %e, "the sandbox could not be stopped");
        }
        if let Err(e) = self.site.runtime.remove_pod_sandbox(&sandbox.id).await {
            tracing::warn!(sandbox = %sandbox.id, error = %e, "the sandbox could not be removed");
        }
        if let Some(root) = &self.site.volume_root
            && let Err(e) =
                volumes::remove(root, self.pod.metadata.uid.as_deref().unwrap_or_default())
        {
            tracing::warn!(pod = %name_of(&self.pod), error = %e, "the pod's volumes could not be removed");
        }
        tracing::debug!(pod = %name_of(&self.pod), "torn down");
    }
}
