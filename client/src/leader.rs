//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's leaderelection
//! does it: the holder renews the Lease every retry period; another candidate takes it over
//! once `renewTime + leaseDurationSeconds` has passed; a leader that cannot renew within the
//! renew deadline steps down (its work is cancelled), so two leaders never act at once for
//! longer than the lease allows.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// kube-controller-manager's timings: 15 s lease, 10 s renew deadline, 2 s retry.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// How long a Lease holds after its last renewal.
    pub lease: Duration,
    /// How long a leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often candidates try and leaders renew.
    pub retry: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            lease: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

/// A candidate for one Lease.
#[derive(Clone)]
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish()
    }
}

fn micro_time() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

/// Whether a Lease's holder has let it run out.
fn expired(lease: &Lease) -> bool {
    let Some(spec) = &lease.spec else { return true };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let Some(renewed) = &spec.renew_time else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    let renewed = renewed.0.as_second();
    jiff::Timestamp::now().as_second() > renewed + duration
}

impl Elector {
    /// A candidate `identity` for Lease `namespace/name`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        timings: Timings,
    ) -> Elector {
        Elector {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            timings,
        }
    }

    /// One try to take or renew the Lease. `Ok(true)`: this candidate holds it now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = micro_time();
        let seconds = self.timings.lease.as_secs() as i32;
        let current = match self.api.get_opt(&self.name).await? {
            Some(lease) => lease,
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name},
                    "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": seconds,
                             "acquireTime": now, "renewTime": now, "leaseTransitions": 0},
                }))
                .map_err(kube::Error::SerdeError)?;
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                };
            }
        };
        let spec = current.spec.clone().unwrap_or_default();
        let mine = spec.holder_identity.as_deref() == Some(self.identity.as_str());
        if !mine && !expired(&current) {
            return Ok(false);
        }
        let mut next = current.clone();
        let mut new_spec = spec.clone();
        new_spec.renew_time = serde_json::from_value(json!(now)).ok();
        new_spec.lease_duration_seconds = Some(seconds);
        if !mine {
            new_spec.holder_identity = Some(self.identity.clone());
            new_spec.acquire_time = serde_json::from_value(json!(now)).ok();
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        next.spec = Some(new_spec);
        // The resourceVersion read above makes this a compare-and-swap.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Waits until this candidate leads (or `cancel` fires: `false`).
    pub async fn acquire(&self, cancel: &CancellationToken) -> bool {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "became the leader");
                    return true;
                }
                Ok(false) => {
                    tracing::debug!(lease = %self.name, "another candidate leads");
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "leader election failed; retrying")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return false,
                () = tokio::time::sleep(self.timings.retry) => {}
            }
        }
    }

    /// Renews the Lease until `cancel` fires or a renewal fails for longer than the renew
    /// deadline; then cancels `leading` (the leader's work) and returns.
    pub async fn keep(&self, cancel: &CancellationToken, leading: &CancellationToken) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(self.timings.retry) => {}
            }
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => {
                    tracing::warn!(lease = %self.name, "the lease was taken over; stepping down");
                    break;
                }
                Err(e) => {
                    tracing::warn!(lease = %self.name, error = %e, "renewing the lease failed");
                    if last_renewed.elapsed() > self.timings.renew_deadline {
                        tracing::error!(lease = %self.name, "the renew deadline passed; stepping down");
                        break;
                    }
                }
            }
        }
        leading.cancel();
    }
}
