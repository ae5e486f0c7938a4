//! The image step of starting a container, as the kubelet takes it: the container's pull
//! policy, the pod's `imagePullSecrets`, a pull through the runtime, the Events (`Pulling`,
//! `Pulled`, `Failed`, `BackOff`) and, when the pull fails, the waiting reasons `ErrImagePull`
//! then `ImagePullBackOff` (or `ErrImageNeverPull`) with a back-off of 10 s doubling to 5 min.

use k8s_openapi::api::core::v1 as core;
use kube::Api;
use tokio::time::Instant;

use super::{PodWorker, Waiting, name_of, restart_backoff};
use crate::runtime::RuntimeError;
use crate::runtime::image::{
    ImageReady, ImageRequest, PullPolicy, RegistryAuth, parse_docker_config,
};

impl PodWorker {
    /// The credentials of the pod's `imagePullSecrets`; a secret that is missing or not of a
    /// docker config shape is reported and left out, as the kubelet does.
    async fn pull_credentials(&self) -> Vec<RegistryAuth> {
        let names: Vec<String> = self
            .spec()
            .image_pull_secrets
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| !n.is_empty())
            .collect();
        if names.is_empty() {
            return Vec::new();
        }
        let namespace = self.pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<core::Secret> = Api::namespaced(self.site.client.clone(), &namespace);
        let mut auths = Vec::new();
        for name in names {
            let secret = match api.get_opt(&name).await {
                Ok(Some(secret)) => secret,
                Ok(None) => {
                    self.event(
                        "Warning",
                        "FailedToRetrieveImagePullSecret",
                        format!("Unable to retrieve some image pull secrets ({name}); attempting to pull the image may not succeed."),
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(pod = %name_of(&self.pod), secret = %name, error = %e, "a pull secret could not be read");
                    continue;
                }
            };
            let data = secret.data.unwrap_or_default();
            let parsed = match (data.get(".dockerconfigjson"), data.get(".dockercfg")) {
                (Some(json), _) => parse_docker_config(&json.0, false),
                (None, Some(cfg)) => parse_docker_config(&cfg.0, true),
                (None, None) => continue,
            };
            match parsed {
                Ok(found) => auths.extend(found),
                Err(e) => self.event(
                    "Warning",
                    "FailedToRetrieveImagePullSecret",
                    format!("Secret {namespace}/{name} {e}"),
                ),
            }
        }
        auths
    }

    /// Makes sure the image of `c` is on the node. `Ok(false)`: it is not, the slot says why
    /// and when the pull is tried again.
    pub(super) async fn ensure_image(
        &mut self,
        c: &core::Container,
        init: bool,
        index: usize,
    ) -> Result<bool, RuntimeError> {
        let image = c.image.clone().unwrap_or_default();
        let policy = PullPolicy::of(c.image_pull_policy.as_deref(), &image);
        let auths = if policy == PullPolicy::Never {
            Vec::new()
        } else {
            self.pull_credentials().await
        };
        let request = ImageRequest {
            image: image.clone(),
            policy,
            auths,
        };
        if policy == PullPolicy::Always && self.site.runtime.name() == "cri" {
            self.event("Normal", "Pulling", format!("Pulling image \"{image}\""));
        }
        let outcome = self.site.runtime.pull_image(request).await;
        let (reason, message) = match outcome {
            Ok(ImageReady::Present) => {
                self.event(
                    "Normal",
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                self.slot(init, index).pull_failures = 0;
                return Ok(true);
            }
            Ok(ImageReady::Pulled(took)) => {
                if policy != PullPolicy::Always {
                    self.event("Normal", "Pulling", format!("Pulling image \"{image}\""));
                }
                self.event(
                    "Normal",
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:.3}s",
                        took.as_secs_f64()
                    ),
                );
                self.slot(init, index).pull_failures = 0;
                return Ok(true);
            }
            Err(RuntimeError::ImagePull(message)) => ("ErrImagePull", message),
            Err(RuntimeError::ImageNeverPull(message)) => ("ErrImageNeverPull", message),
            Err(e) => return Err(e),
        };
        tracing::warn!(pod = %name_of(&self.pod), container = %c.name, %image, %message, "an image could not be pulled");
        if reason == "ErrImagePull" {
            self.event(
                "Warning",
                "Failed",
                format!("Failed to pull image \"{image}\": {message}"),
            );
        } else {
            self.event("Warning", "ErrImageNeverPull", message.clone());
        }
        self.event("Warning", "Failed", format!("Error: {reason}"));
        let now = Instant::now();
        let slot = self.slot(init, index);
        slot.restart_at = Some(now + restart_backoff(slot.pull_failures));
        slot.pull_failures += 1;
        slot.id = None;
        slot.running = false;
        slot.waiting = Some(Waiting {
            reason,
            message: message.clone(),
        });
        if reason == "ErrImagePull" {
            // The kubelet reports the failed pull, then the back-off it waits out.
            self.report().await;
            self.event(
                "Normal",
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            );
            self.event("Warning", "Failed", "Error: ImagePullBackOff".to_owned());
            self.slot(init, index).waiting = Some(Waiting {
                reason: "ImagePullBackOff",
                message: format!("Back-off pulling image \"{image}\": {message}"),
            });
        }
        Ok(false)
    }
}
