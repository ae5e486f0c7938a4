//! Status conditions as every controller keeps them, one rule for all kinds: a condition that
//! already says the same status for the same reason stays exactly as it was (its message and
//! times too: a message that names a generated object would otherwise change on every attempt,
//! and each status write would wake the controller again); a new reason with the same status
//! keeps the `lastTransitionTime`; a new status is a transition.

use k8s_openapi::api::apps::v1::{
    DaemonSetCondition, DeploymentCondition, ReplicaSetCondition, StatefulSetCondition,
};
use k8s_openapi::api::batch::v1::JobCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// A workload's status condition (Deployment, ReplicaSet, DaemonSet, StatefulSet, Job).
pub trait Condition: Clone {
    /// Its `type`.
    fn kind(&self) -> &str;
    /// Its `status` and `reason`.
    fn state(&self) -> (&str, Option<&str>);
    /// Its `lastTransitionTime`.
    fn transition_time(&self) -> Option<&Time>;
    /// Sets its `lastTransitionTime`.
    fn set_transition_time(&mut self, at: Option<Time>);
}

macro_rules! condition {
    ($($ty:ty),*) => {$(
        impl Condition for $ty {
            fn kind(&self) -> &str {
                &self.type_
            }
            fn state(&self) -> (&str, Option<&str>) {
                (&self.status, self.reason.as_deref())
            }
            fn transition_time(&self) -> Option<&Time> {
                self.last_transition_time.as_ref()
            }
            fn set_transition_time(&mut self, at: Option<Time>) {
                self.last_transition_time = at;
            }
        }
    )*};
}

condition!(
    DeploymentCondition,
    ReplicaSetCondition,
    DaemonSetCondition,
    StatefulSetCondition,
    JobCondition
);

/// Sets `new` in `conditions` by the rule above; returns whether anything changed.
pub fn set<C: Condition>(conditions: &mut Vec<C>, new: C) -> bool {
    match conditions.iter_mut().find(|c| c.kind() == new.kind()) {
        Some(old) if old.state() == new.state() => false,
        Some(old) => {
            let kept = (old.state().0 == new.state().0)
                .then(|| old.transition_time().cloned())
                .flatten();
            *old = new;
            if kept.is_some() {
                old.set_transition_time(kept);
            }
            true
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Removes the condition of type `kind`; returns whether there was one.
pub fn remove<C: Condition>(conditions: &mut Vec<C>, kind: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.kind() != kind);
    conditions.len() != before
}

/// The condition of type `kind`, if there is one.
pub fn find<'a, C: Condition>(conditions: &'a [C], kind: &str) -> Option<&'a C> {
    conditions.iter().find(|c| c.kind() == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Option<Time> {
        Some(Time(
            jiff::Timestamp::from_second(second).unwrap_or_default(),
        ))
    }

    fn failure(reason: &str, message: &str, second: i64) -> ReplicaSetCondition {
        ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: at(second),
        }
    }

    #[test]
    fn the_same_status_and_reason_stay_as_first_reported() {
        let mut list = Vec::new();
        assert!(set(
            &mut list,
            failure("FailedCreate", "pods \"a-x1\" is forbidden", 10)
        ));
        assert!(!set(
            &mut list,
            failure("FailedCreate", "pods \"a-y2\" is forbidden", 20)
        ));
        assert_eq!(
            list[0].message.as_deref(),
            Some("pods \"a-x1\" is forbidden")
        );
        // A new reason, same status: the transition time stays.
        assert!(set(&mut list, failure("FailedDelete", "gone", 30)));
        assert_eq!(
            (
                list[0].reason.as_deref(),
                list[0].last_transition_time.clone()
            ),
            (Some("FailedDelete"), at(10))
        );
        // A new status is a transition.
        let mut cleared = failure("FailedDelete", "", 40);
        cleared.status = "False".into();
        assert!(set(&mut list, cleared));
        assert_eq!(list[0].last_transition_time, at(40));
        assert!(remove(&mut list, "ReplicaFailure"));
        assert!(find(&list, "ReplicaFailure").is_none());
    }
}
