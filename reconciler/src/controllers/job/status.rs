//! A Job's conditions as Kubernetes writes them: `SuccessCriteriaMet` and `FailureTarget` when
//! the outcome is decided, `Complete` and `Failed` once no pod is left running, `Suspended`;
//! and when a finished Job's `ttlSecondsAfterFinished` runs out.

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::controllers::conditions;

/// Why a Job failed: its condition's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `BackoffLimitExceeded`, `DeadlineExceeded`, `PodFailurePolicy`.
    pub reason: String,
    /// The message `kubectl describe job` shows.
    pub message: String,
}

impl Failure {
    /// More pods failed than `backoffLimit` allows.
    pub fn backoff_limit() -> Failure {
        Failure {
            reason: "BackoffLimitExceeded".into(),
            message: "Job has reached the specified backoff limit".into(),
        }
    }

    /// `activeDeadlineSeconds` passed.
    pub fn deadline() -> Failure {
        Failure {
            reason: "DeadlineExceeded".into(),
            message: "Job was active longer than specified deadline".into(),
        }
    }

    /// A `FailJob` rule of the pod failure policy matched.
    pub fn policy(message: String) -> Failure {
        Failure {
            reason: "PodFailurePolicy".into(),
            message,
        }
    }
}

/// The condition `type_` if it is True.
pub fn holds<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// The Complete or Failed condition of a finished Job.
pub fn finished(status: &JobStatus) -> Option<&JobCondition> {
    holds(status, "Complete").or_else(|| holds(status, "Failed"))
}

/// Sets condition `type_` by the one rule of [`conditions::set`].
pub fn set(
    conditions: &mut Vec<JobCondition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &Time,
) {
    conditions::set(
        conditions,
        JobCondition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_probe_time: Some(now.clone()),
            last_transition_time: Some(now.clone()),
        },
    );
}

/// Seconds until a finished Job with `ttlSecondsAfterFinished` is to be deleted (zero or less:
/// now); `None` when it is not finished or has no TTL.
pub fn ttl_left(job: &Job, now: jiff::Timestamp) -> Option<i64> {
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let status = job.status.as_ref()?;
    let done = finished(status)?;
    let at = status
        .completion_time
        .as_ref()
        .filter(|_| done.type_ == "Complete")
        .or(done.last_transition_time.as_ref())?;
    Some(at.0.as_second() + i64::from(ttl) - now.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::JobSpec;

    fn at(second: i64) -> Time {
        Time(jiff::Timestamp::from_second(second).unwrap_or_default())
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            &at(10),
        );
        set(
            &mut conditions,
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            &at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, Some(at(10)));
        set(
            &mut conditions,
            "Suspended",
            false,
            "JobResumed",
            "Job resumed",
            &at(30),
        );
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].last_transition_time, Some(at(30)));
    }

    #[test]
    fn ttl_counts_from_the_end() {
        let mut job = Job {
            spec: Some(JobSpec {
                ttl_seconds_after_finished: Some(100),
                ..JobSpec::default()
            }),
            ..Job::default()
        };
        let now = jiff::Timestamp::from_second(1_050).unwrap_or_default();
        assert_eq!(ttl_left(&job, now), None, "not finished");
        let mut conditions = Vec::new();
        set(
            &mut conditions,
            "Failed",
            true,
            "BackoffLimitExceeded",
            "",
            &at(1_000),
        );
        job.status = Some(JobStatus {
            conditions: Some(conditions),
            ..JobStatus::default()
        });
        assert_eq!(ttl_left(&job, now), Some(50));
        if let Some(s) = job.status.as_mut() {
            s.conditions = Some(Vec::new());
            set(
                s.conditions.get_or_insert_default(),
                "Complete",
                true,
                "",
                "",
                &at(900),
            );
            s.completion_time = Some(at(990));
        }
        assert_eq!(ttl_left(&job, now), Some(40));
    }
}
