//! A Deployment's status from its ReplicaSets, and its conditions as kube-controller-manager
//! writes them: Available (MinimumReplicasAvailable), Progressing (NewReplicaSetCreated,
//! FoundNewReplicaSet, ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded,
//! DeploymentPaused, DeploymentResumed) and ReplicaFailure copied from the new set.
//! `kubectl rollout status` and GitOps health read exactly these.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use crate::controllers::conditions;

/// The Progressing reason of a finished rollout.
pub const COMPLETE: &str = "NewReplicaSetAvailable";
/// The Progressing reason of a rollout past its deadline.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";
const RESUMED: &str = "DeploymentResumed";

/// What this reconcile did that the conditions tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing notable.
    Synced,
    /// Created the new ReplicaSet.
    CreatedNewSet,
}

fn counts(
    sets: &[&ReplicaSet],
    f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> i32,
) -> i32 {
    sets.iter().filter_map(|rs| rs.status.as_ref()).map(f).sum()
}

fn condition<'a>(s: &'a DeploymentStatus, kind: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_deref()?.iter().find(|c| c.type_ == kind)
}

/// Sets a condition by the one rule of [`conditions::set`].
fn set(s: &mut DeploymentStatus, new: DeploymentCondition) {
    conditions::set(s.conditions.get_or_insert_with(Vec::new), new);
}

fn remove(s: &mut DeploymentStatus, kind: &str) {
    if let Some(c) = s.conditions.as_mut() {
        conditions::remove(c, kind);
    }
}

fn make(
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    now: jiff::Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: kind.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// Seconds left before a rollout in progress times out, if it has a deadline and is not done.
pub fn deadline_left(
    d: &Deployment,
    status: &DeploymentStatus,
    now: jiff::Timestamp,
) -> Option<i64> {
    let deadline = d.spec.as_ref()?.progress_deadline_seconds?;
    let c = condition(status, "Progressing")?;
    if matches!(c.reason.as_deref(), Some(COMPLETE | TIMED_OUT | PAUSED)) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0.as_second();
    Some((from + i64::from(deadline) - now.as_second()).max(0))
}

/// The status `d` should carry, given its sets (`new` among them, if it exists).
pub fn compute(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
    max_unavailable: i32,
    step: Step,
    now: jiff::Timestamp,
) -> DeploymentStatus {
    let spec = d.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let previous = d.status.clone().unwrap_or_default();
    let available = counts(all, |s| s.available_replicas.unwrap_or(0));
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(counts(all, |s| s.replicas)),
        updated_replicas: Some(
            new.and_then(|n| n.status.as_ref())
                .map_or(0, |s| s.replicas),
        ),
        ready_replicas: Some(counts(all, |s| s.ready_replicas.unwrap_or(0))),
        available_replicas: Some(available),
        unavailable_replicas: Some((replicas - available).max(0)),
        collision_count: previous.collision_count,
        conditions: previous.conditions.clone(),
        terminating_replicas: None,
    };
    if available >= replicas - max_unavailable {
        set(
            &mut s,
            make(
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set(
            &mut s,
            make(
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    let failure = new
        .and_then(|n| n.status.as_ref())
        .and_then(|st| st.conditions.as_deref())
        .and_then(|c| {
            c.iter()
                .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
        });
    match failure {
        Some(f) => set(
            &mut s,
            make(
                "ReplicaFailure",
                "True",
                f.reason.as_deref().unwrap_or("FailedCreate"),
                f.message.clone().unwrap_or_default(),
                now,
            ),
        ),
        None => remove(&mut s, "ReplicaFailure"),
    }
    let current = condition(&s, "Progressing").cloned();
    let reason = current.as_ref().and_then(|c| c.reason.clone());
    if spec.paused == Some(true) {
        if reason.as_deref() != Some(PAUSED) {
            set(
                &mut s,
                make(
                    "Progressing",
                    "Unknown",
                    PAUSED,
                    "Deployment is paused".into(),
                    now,
                ),
            );
        }
        return s;
    }
    if reason.as_deref() == Some(PAUSED) {
        set(
            &mut s,
            make(
                "Progressing",
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
                now,
            ),
        );
    }
    let Some(new) = new else {
        return s;
    };
    let name = new.name_any();
    if step == Step::CreatedNewSet {
        set_progressing(
            &mut s,
            make(
                "Progressing",
                "True",
                "NewReplicaSetCreated",
                format!("Created new replica set \"{name}\""),
                now,
            ),
        );
    } else if condition(&s, "Progressing").is_none() {
        set(
            &mut s,
            make(
                "Progressing",
                "True",
                "FoundNewReplicaSet",
                format!("Found new replica set \"{name}\""),
                now,
            ),
        );
    }
    let Some(deadline) = spec.progress_deadline_seconds else {
        return s;
    };
    let current = condition(&s, "Progressing").cloned();
    let updated = s.updated_replicas.unwrap_or(0);
    let total = s.replicas.unwrap_or(0);
    let settled =
        total == updated && current.as_ref().and_then(|c| c.reason.as_deref()) == Some(COMPLETE);
    if settled {
        return s;
    }
    let complete = updated == replicas && total == replicas && available == replicas;
    let progressed = updated > previous.updated_replicas.unwrap_or(0)
        || s.ready_replicas.unwrap_or(0) > previous.ready_replicas.unwrap_or(0)
        || available > previous.available_replicas.unwrap_or(0)
        || (total - updated)
            < (previous.replicas.unwrap_or(0) - previous.updated_replicas.unwrap_or(0));
    if complete {
        set(
            &mut s,
            make(
                "Progressing",
                "True",
                COMPLETE,
                format!("ReplicaSet \"{name}\" has successfully progressed."),
                now,
            ),
        );
    } else if progressed {
        set_progressing(
            &mut s,
            make(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{name}\" is progressing."),
                now,
            ),
        );
    } else if let Some(c) = current {
        let reason = c.reason.as_deref();
        let from = c.last_update_time.as_ref().map_or(0, |t| t.0.as_second());
        let timed_out = reason == Some(TIMED_OUT)
            || (reason != Some(COMPLETE) && now.as_second() > from + i64::from(deadline));
        if timed_out {
            set(
                &mut s,
                make(
                    "Progressing",
                    "False",
                    TIMED_OUT,
                    format!("ReplicaSet \"{name}\" has timed out progressing."),
                    now,
                ),
            );
        }
    }
    s
}

/// Progress made: the condition's `lastUpdateTime` moves (its deadline restarts) even when
/// its reason stays; `lastTransitionTime` stays while it is True.
fn set_progressing(s: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(old) = condition(s, "Progressing") {
        if old.status == "True" {
            new.last_transition_time = old.last_transition_time.clone();
        }
        remove(s, "Progressing");
    }
    s.conditions.get_or_insert_with(Vec::new).push(new);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).expect("fixture")
    }

    fn deployment(status: serde_json::Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3, "progressDeadlineSeconds": 60, "selector": {},
                     "template": {}},
            "status": status,
        }))
        .expect("fixture")
    }

    fn set(name: &str, replicas: i32, available: i32) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available},
        }))
        .expect("fixture")
    }

    fn progressing(s: &DeploymentStatus) -> (String, String) {
        let c = condition(s, "Progressing").expect("fixture");
        (c.status.clone(), c.reason.clone().expect("fixture"))
    }

    #[test]
    fn a_rollout_progresses_completes_or_times_out() {
        let new = set("web-new", 0, 0);
        let old = set("web-old", 3, 3);
        // The status before the template changed: three old pods.
        let d = deployment(
            json!({"replicas": 3, "readyReplicas": 3, "availableReplicas": 3, "updatedReplicas": 3}),
        );
        let s = compute(
            &d,
            Some(&new),
            &[&new, &old],
            0,
            Step::CreatedNewSet,
            ts(1000),
        );
        assert_eq!(
            progressing(&s),
            ("True".into(), "NewReplicaSetCreated".into())
        );
        assert_eq!(s.replicas, Some(3));
        assert_eq!(s.updated_replicas, Some(0));
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(condition(&s, "Available").expect("fixture").status, "True");

        // No progress for longer than the deadline: timed out.
        let d = deployment(serde_json::to_value(&s).expect("fixture"));
        let stuck = compute(&d, Some(&new), &[&new, &old], 0, Step::Synced, ts(1061));
        assert_eq!(progressing(&stuck), ("False".into(), TIMED_OUT.into()));
        assert_eq!(deadline_left(&d, &s, ts(1030)), Some(30));

        // Progress instead: ReplicaSetUpdated, then complete.
        let new2 = set("web-new", 3, 2);
        let moving = compute(&d, Some(&new2), &[&new2], 0, Step::Synced, ts(1050));
        assert_eq!(
            progressing(&moving),
            ("True".into(), "ReplicaSetUpdated".into())
        );
        let d = deployment(serde_json::to_value(&moving).expect("fixture"));
        let new3 = set("web-new", 3, 3);
        let done = compute(&d, Some(&new3), &[&new3], 0, Step::Synced, ts(1051));
        assert_eq!(progressing(&done), ("True".into(), COMPLETE.into()));
        let d = deployment(serde_json::to_value(&done).expect("fixture"));
        assert_eq!(deadline_left(&d, &done, ts(5000)), None);
    }

    #[test]
    fn availability_and_pause() {
        let new = set("web-new", 3, 1);
        let d = deployment(json!({}));
        let s = compute(&d, Some(&new), &[&new], 1, Step::Synced, ts(1));
        let a = condition(&s, "Available").expect("fixture");
        assert_eq!(
            (a.status.as_str(), a.reason.as_deref()),
            ("False", Some("MinimumReplicasUnavailable"))
        );
        assert_eq!(s.unavailable_replicas, Some(2));
        let mut paused = deployment(json!({}));
        paused.spec.as_mut().expect("fixture").paused = Some(true);
        let s = compute(&paused, Some(&new), &[&new], 1, Step::Synced, ts(1));
        assert_eq!(
            progressing(&s),
            ("Unknown".into(), "DeploymentPaused".into())
        );
        let resumed = deployment(serde_json::to_value(&s).expect("fixture"));
        let s = compute(&resumed, Some(&new), &[&new], 1, Step::Synced, ts(2));
        assert_eq!(progressing(&s).1, "DeploymentResumed");
    }
}
