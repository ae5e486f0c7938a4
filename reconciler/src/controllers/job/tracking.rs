//! Counting a Job's finished pods exactly once, as Kubernetes' job controller does: every pod
//! is created with the `batch.kubernetes.io/job-tracking` finalizer; a pod that ended is first
//! written into `status.uncountedTerminatedPods`, then its finalizer is removed, then it moves
//! into `succeeded`/`failed`. A crash between the steps loses nothing and counts nothing
//! twice, and a finished pod deleted by someone (or by the garbage collector) is still
//! counted.
//!
//! Pods whose Job is gone keep a finalizer nobody would remove; [`sweep_orphans`] removes it
//! once the Job is confirmed gone with the apiserver.

use std::sync::Arc;

use futures::StreamExt;
use futures::channel::mpsc;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::super::error::ControllerError;
use super::super::owner::controller_of;
use crate::controllers::cached_pod::CachedPod;

/// The finalizer that holds a Job's pod until it is counted.
pub const FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// Whether `pod` still waits to be counted.
pub fn has_finalizer(pod: &CachedPod) -> bool {
    pod.finalizers().iter().any(|f| f == FINALIZER)
}

/// Whether `pod` has ended for its Job: finished, or being deleted.
pub fn has_ended(pod: &CachedPod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed")) || pod.metadata.deletion_timestamp.is_some()
}

/// Removes the tracking finalizer from `pod` (a strategic merge patch deleting that one
/// value, as Kubernetes' job controller sends it: other finalizers and concurrent changes are
/// left alone). A pod already gone is fine.
pub async fn release(api: &Api<Pod>, pod: &CachedPod) -> Result<(), ControllerError> {
    if !has_finalizer(pod) {
        return Ok(());
    }
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [FINALIZER]}});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Strategic(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ControllerError::api(
            "remove the job-tracking finalizer of",
            format!(
                "pod {}/{}",
                pod.namespace().unwrap_or_default(),
                pod.name_any()
            ),
            e,
        )),
    }
}

/// A sender of pods that may have lost their Job, and the sweeper that frees them.
pub fn orphans() -> (
    mpsc::UnboundedSender<Arc<CachedPod>>,
    mpsc::UnboundedReceiver<Arc<CachedPod>>,
) {
    mpsc::unbounded()
}

/// Whether `pod` carries the finalizer for a Job the cache does not hold.
pub fn maybe_orphan(pod: &CachedPod, jobs: &Store<Job>) -> bool {
    if !has_finalizer(pod) {
        return false;
    }
    match controller_of(&pod.metadata) {
        Some(r) if r.kind == "Job" => {
            let job = ObjectRef::<Job>::new(&r.name).within(&pod.namespace().unwrap_or_default());
            jobs.get(&job)
                .is_none_or(|j| j.uid().as_deref() != Some(r.uid.as_str()))
        }
        // Not a Job's (any more): nobody else would remove it.
        _ => true,
    }
}

/// Frees the pods sent on `candidates` whose Job is confirmed gone (looked up by name and uid
/// once the Job cache is ready), until `cancel`.
pub async fn sweep_orphans(
    client: kube::Client,
    jobs: Store<Job>,
    mut candidates: mpsc::UnboundedReceiver<Arc<CachedPod>>,
    cancel: CancellationToken,
) {
    tokio::select! {
        () = cancel.cancelled() => return,
        ready = jobs.wait_until_ready() => if ready.is_err() {
            return;
        },
    }
    loop {
        let pod = tokio::select! {
            () = cancel.cancelled() => return,
            next = candidates.next() => match next {
                Some(p) => p,
                None => return,
            },
        };
        if !maybe_orphan(&pod, &jobs) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let owner = controller_of(&pod.metadata).filter(|r| r.kind == "Job");
        if let Some(r) = owner {
            match Api::<Job>::namespaced(client.clone(), &ns)
                .get_opt(&r.name)
                .await
            {
                Ok(Some(job)) if job.uid().as_deref() == Some(r.uid.as_str()) => continue,
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(pod = %pod.name_any(), %error, "looking up a pod's Job failed; its finalizer stays until the pod changes again");
                    continue;
                }
            }
        }
        let api = Api::<Pod>::namespaced(client.clone(), &ns);
        // A failure is tried again (five times, a second apart): a pod left with the
        // finalizer would never go away.
        for attempt in 1..=5 {
            match release(&api, &pod).await {
                Ok(()) => {
                    tracing::debug!(pod = %pod.name_any(), "freed an orphaned Job pod");
                    break;
                }
                Err(error) => {
                    tracing::warn!(pod = %pod.name_any(), %error, attempt, "freeing an orphaned Job pod failed");
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    }
                }
            }
        }
    }
}
