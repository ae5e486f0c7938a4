//! A ReplicaSet's status, computed from the pods it owns: replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas (ready for `minReadySeconds`), observedGeneration and the
//! ReplicaFailure condition that carries the apiserver's refusal of a create or delete.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controllers::cached_pod::CachedPod;
use crate::controllers::conditions;
use crate::controllers::pods::{is_available, is_ready};

/// The status `rs` should carry, given its active pods, how many of its pods are being
/// deleted (`terminating`: reported for ReplicaSets, whose API has the field; a Recreate
/// rollout waits for it to reach 0) and the failure of this reconcile's writes, if any
/// (`FailedCreate` or `FailedDelete`, and the message).
pub fn compute(
    rs: &ReplicaSet,
    active: &[Arc<CachedPod>],
    terminating: Option<i32>,
    failure: Option<(&str, String)>,
    now: jiff::Timestamp,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let count = |f: &dyn Fn(&CachedPod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    let fully_labeled = count(&|p| {
        let labels = p.metadata.labels.as_ref();
        template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
    });
    let previous = rs.status.as_ref();
    let mut conditions: Vec<ReplicaSetCondition> = previous
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    match failure {
        Some((reason, message)) => {
            conditions::set(
                &mut conditions,
                ReplicaSetCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some(reason.into()),
                    message: Some(message),
                    last_transition_time: Some(Time(now)),
                },
            );
        }
        None => {
            conditions::remove(&mut conditions, "ReplicaFailure");
        }
    }
    ReplicaSetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: Some(fully_labeled),
        ready_replicas: Some(count(&is_ready)),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        observed_generation: rs.metadata.generation,
        conditions: (!conditions.is_empty()).then_some(conditions),
        terminating_replicas: terminating,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::pods::tests::ts;
    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::PodTemplateSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod(labels: &[(&str, &str)], ready_at: Option<i64>) -> Arc<CachedPod> {
        let mut p =
            (*crate::controllers::pods::tests::pod("p", true, "Running", ready_at, 1)).clone();
        p.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        Arc::new(p)
    }

    #[test]
    fn counts_labels_readiness_and_availability() {
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                generation: Some(3),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                min_ready_seconds: Some(10),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(
                            [
                                ("app".to_owned(), "web".to_owned()),
                                ("tier".to_owned(), "a".to_owned()),
                            ]
                            .into(),
                        ),
                        ..ObjectMeta::default()
                    }),
                    spec: None,
                }),
                ..ReplicaSetSpec::default()
            }),
            status: None,
        };
        let pods = [
            pod(&[("app", "web"), ("tier", "a")], Some(100)),
            pod(&[("app", "web")], Some(95)),
            pod(&[("app", "web"), ("tier", "a")], None),
        ];
        let s = compute(&rs, &pods, None, None, ts(106));
        assert_eq!(s.replicas, 3);
        assert_eq!(s.fully_labeled_replicas, Some(2));
        assert_eq!(s.ready_replicas, Some(2));
        assert_eq!(s.available_replicas, Some(1));
        assert_eq!(s.observed_generation, Some(3));
        assert!(s.conditions.is_none());

        let failed = compute(
            &rs,
            &pods,
            None,
            Some(("FailedCreate", "quota".into())),
            ts(106),
        );
        let c = &failed.conditions.expect("fixture")[0];
        assert_eq!(
            (c.type_.as_str(), c.reason.as_deref()),
            ("ReplicaFailure", Some("FailedCreate"))
        );
    }
}
