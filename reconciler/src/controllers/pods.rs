//! What the workload controllers ask of pods: whether one is active, ready, available; which
//! to delete first on a scale-down (kube-controller-manager's order); the pod a template
//! makes; and creating many of them in slow-start batches (1, 2, 4, ...), so that a template
//! the apiserver refuses costs one failed create, not a thousand.

use std::cmp::Reverse;
use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};

use super::cached_pod::CachedPod;
use super::error::ControllerError;

/// The most creations or deletions one reconcile makes (kube-controller-manager's
/// `burstReplicas`).
pub const BURST: usize = 500;

/// Neither finished nor being deleted.
pub fn is_active(pod: &CachedPod) -> bool {
    pod.metadata.deletion_timestamp.is_none() && !is_finished(pod)
}

/// Whether the pod has ended (`Succeeded` or `Failed`).
pub fn is_finished(pod: &CachedPod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod became Ready, if it is.
pub fn ready_since(pod: &CachedPod) -> Option<jiff::Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(|| jiff::Timestamp::from_second(0).unwrap_or_default()),
    )
}

/// Ready.
pub fn is_ready(pod: &CachedPod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &CachedPod, min_ready_seconds: i32, now: jiff::Timestamp) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready_seconds <= 0
            || now.as_second() - since.as_second() >= i64::from(min_ready_seconds)
    })
}

/// Seconds until a ready pod becomes available, if it is ready and not yet available.
pub fn seconds_to_available(
    pod: &CachedPod,
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> Option<i64> {
    let since = ready_since(pod)?;
    let left = i64::from(min_ready_seconds) - (now.as_second() - since.as_second());
    (left > 0).then_some(left)
}

/// What a controller does after a pass over its pods: look again when the first ready pod
/// becomes available (after `minReadySeconds`), or wait for a change.
pub fn until_available<'a>(
    pods: impl IntoIterator<Item = &'a Arc<CachedPod>>,
    min_ready_seconds: i32,
    now: jiff::Timestamp,
) -> kube::runtime::controller::Action {
    let next = pods
        .into_iter()
        .filter_map(|p| seconds_to_available(p, min_ready_seconds, now))
        .min();
    match next {
        Some(s) => kube::runtime::controller::Action::requeue(std::time::Duration::from_secs(
            s.unsigned_abs(),
        )),
        None => kube::runtime::controller::Action::await_change(),
    }
}

/// Orders pods so that the first are the ones to delete on a scale-down: unscheduled before
/// scheduled, Pending before Unknown before Running, not ready before ready, ready for less
/// time before longer, more restarts before fewer, newer before older.
pub fn deletion_order(pods: &mut [Arc<CachedPod>]) {
    pods.sort_by_cached_key(|p| {
        let status = p.status.as_ref();
        let scheduled = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let phase = match status.and_then(|s| s.phase.as_deref()) {
            Some("Pending") | None => 0,
            Some("Unknown") => 1,
            Some("Running") => 2,
            _ => 3,
        };
        let ready = ready_since(p);
        let restarts: i32 = status
            .and_then(|s| s.container_statuses.as_deref())
            .map(|c| c.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0);
        let created = p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(0);
        (
            scheduled,
            phase,
            ready.is_some(),
            Reverse(ready.map(|t| t.as_second())),
            Reverse(restarts),
            Reverse(created),
        )
    });
}

/// The pod `template` makes for an owner: its labels, annotations and spec, the owner's
/// controller reference, and a generated name `prefix-xxxxx`.
pub fn from_template(template: &PodTemplateSpec, owner: OwnerReference, prefix: &str) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// What a batch of creations did.
#[derive(Debug, Default)]
pub struct Created {
    /// Names of the pods the apiserver made.
    pub names: Vec<String>,
    /// The first refusal, which stopped the batches.
    pub failure: Option<ControllerError>,
}

/// Creates `count` copies of `pod` in slow-start batches; stops at the first batch with a
/// failure.
pub async fn create_in_batches(api: &Api<Pod>, pod: &Pod, count: usize) -> Created {
    create_each(api, vec![pod.clone(); count.min(BURST)]).await
}

/// Creates these pods (at most [`BURST`]) in slow-start batches of 1, 2, 4, ...; stops at the
/// first batch with a failure.
pub async fn create_each(api: &Api<Pod>, mut pods: Vec<Pod>) -> Created {
    pods.truncate(BURST);
    let mut created = Created::default();
    let mut batch = 1;
    let mut rest = pods.as_slice();
    while !rest.is_empty() {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        let params = PostParams::default();
        let results = join_all(now.iter().map(|p| api.create(&params, p))).await;
        for (result, pod) in results.into_iter().zip(now) {
            match result {
                Ok(p) => created.names.push(p.metadata.name.unwrap_or_default()),
                Err(e) => {
                    if created.failure.is_none() {
                        let what = pod
                            .metadata
                            .name
                            .clone()
                            .or_else(|| pod.metadata.generate_name.clone())
                            .unwrap_or_default();
                        created.failure = Some(ControllerError::api("create pod", what, e));
                    }
                }
            }
        }
        if created.failure.is_some() {
            break;
        }
        batch *= 2;
    }
    created
}

/// Deletes these pods; answers the names deleted (a pod already gone counts) and the first
/// failure.
pub async fn delete_all(
    api: &Api<Pod>,
    pods: &[Arc<CachedPod>],
) -> (Vec<String>, Option<ControllerError>) {
    let results = join_all(pods.iter().map(|p| async move {
        let name = p.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => Ok(name),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(name),
            Err(e) => Err(ControllerError::api("delete pod", name, e)),
        }
    }))
    .await;
    let mut deleted = Vec::new();
    let mut failure = None;
    for r in results {
        match r {
            Ok(n) => deleted.push(n),
            Err(e) => {
                if failure.is_none() {
                    failure = Some(e);
                }
            }
        }
    }
    (deleted, failure)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::controllers::cached_pod::{CachedPodSpec, CachedPodStatus};
    use k8s_openapi::api::core::v1::PodCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    pub(crate) fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).expect("fixture")
    }

    /// A pod for tests: on a node or not, in a phase, Ready since `ready_at`.
    pub(crate) fn pod(
        name: &str,
        node: bool,
        phase: &str,
        ready_at: Option<i64>,
        created: i64,
    ) -> Arc<CachedPod> {
        Arc::new(CachedPod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(ts(created))),
                ..ObjectMeta::default()
            },
            spec: Some(CachedPodSpec {
                node_name: node.then(|| "n1".to_owned()),
                ..CachedPodSpec::default()
            }),
            status: Some(CachedPodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(t))),
                        ..PodCondition::default()
                    }]
                }),
                ..CachedPodStatus::default()
            }),
        })
    }

    #[test]
    fn deletes_the_least_useful_first() {
        let mut pods = vec![
            pod("old-ready", true, "Running", Some(100), 10),
            pod("new-ready", true, "Running", Some(200), 20),
            pod("not-ready", true, "Running", None, 5),
            pod("pending", true, "Pending", None, 1),
            pod("unscheduled", false, "Pending", None, 1),
            pod("new-ready-same", true, "Running", Some(200), 30),
        ];
        deletion_order(&mut pods);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().expect("fixture"))
            .collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "not-ready",
                "new-ready-same",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = pod("p", true, "Running", Some(100), 1);
        assert!(is_available(&p, 0, ts(100)));
        assert!(!is_available(&p, 10, ts(105)));
        assert_eq!(seconds_to_available(&p, 10, ts(105)), Some(5));
        assert!(is_available(&p, 10, ts(110)));
        assert!(!is_active(&pod("done", true, "Succeeded", None, 1)));
    }
}
