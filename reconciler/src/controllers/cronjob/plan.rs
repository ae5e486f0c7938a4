//! What a CronJob should do at a given instant, decided without the apiserver (tests drive
//! the clock by passing it): the schedule time that is due, if any, within
//! `startingDeadlineSeconds`; whether `concurrencyPolicy` lets it start (Allow), skips it
//! (Forbid, a Job still running) or replaces the running Jobs (Replace); and when to look
//! again.

use std::time::Duration;

use ferry_schema::cron::Schedule;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};

/// More missed times than this are not walked one by one (Kubernetes warns at 100).
pub const MISSED_LIMIT: usize = 100;

/// The part of a CronJob the decision reads.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The parsed schedule.
    pub schedule: &'a Schedule,
    /// `spec.timeZone`, or the controller's zone.
    pub zone: &'a TimeZone,
    /// `status.lastScheduleTime`, else the CronJob's creation.
    pub since: Timestamp,
    /// `spec.startingDeadlineSeconds`.
    pub starting_deadline: Option<i64>,
    /// `spec.concurrencyPolicy`.
    pub policy: &'a str,
    /// Names of this CronJob's Jobs still running.
    pub active: &'a [String],
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing due.
    Wait,
    /// Start a Job for `scheduled`, deleting `replace` first (Replace policy).
    Start {
        /// The schedule time the Job is for.
        scheduled: Zoned,
        /// Running Jobs to delete first.
        replace: Vec<String>,
        /// Missed times before it (more than [`MISSED_LIMIT`] earns a warning).
        missed: usize,
    },
    /// Forbid: `scheduled` is due but a Job still runs; it is looked at again when that Job
    /// ends or at the next time.
    Skip {
        /// The time skipped for now.
        scheduled: Zoned,
    },
}

/// The decision at `now`, and when the schedule fires next (to look again then).
pub fn decide(inputs: &Inputs<'_>, now: Timestamp) -> (Decision, Option<Zoned>) {
    let now_z = now.to_zoned(inputs.zone.clone());
    let mut since = inputs.since;
    if let Some(deadline) = inputs.starting_deadline {
        // Times older than the deadline are not started at all.
        let earliest = Timestamp::from_second(now.as_second() - deadline).unwrap_or(since);
        since = since.max(earliest);
    }
    let since_z = since.to_zoned(inputs.zone.clone());
    let next = inputs.schedule.next_after(&now_z);
    let (latest, count) = inputs
        .schedule
        .latest_between(&since_z, &now_z, MISSED_LIMIT);
    let Some(scheduled) = latest else {
        return (Decision::Wait, next);
    };
    let decision = match (inputs.policy, inputs.active.is_empty()) {
        ("Forbid", false) => Decision::Skip { scheduled },
        ("Replace", false) => Decision::Start {
            scheduled,
            replace: inputs.active.to_vec(),
            missed: count.saturating_sub(1),
        },
        _ => Decision::Start {
            scheduled,
            replace: Vec::new(),
            missed: count.saturating_sub(1),
        },
    };
    (decision, next)
}

/// The name of the Job for `scheduled`: the CronJob's and the time in minutes since the
/// epoch, as Kubernetes names it (seconds for a schedule that fires more often than a
/// minute, so two times never share a name).
pub fn job_name(cronjob: &str, scheduled: &Zoned, schedule: &Schedule) -> String {
    let seconds = scheduled.timestamp().as_second();
    match schedule {
        Schedule::Every(d) if *d < Duration::from_secs(60) => format!("{cronjob}-{seconds}"),
        _ => format!("{cronjob}-{}", seconds / 60),
    }
}

/// How long until `next` (at least 100 ms, so a time that is due is not looked at early).
pub fn wait_until(next: &Zoned, now: Timestamp) -> Duration {
    let ms = next.timestamp().as_millisecond() - now.as_millisecond();
    Duration::from_millis(ms.max(0) as u64 + 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    static UTC: TimeZone = TimeZone::UTC;

    fn t(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    fn inputs<'a>(
        schedule: &'a Schedule,
        since: &str,
        policy: &'a str,
        active: &'a [String],
    ) -> Inputs<'a> {
        Inputs {
            schedule,
            zone: &UTC,
            since: t(since),
            starting_deadline: None,
            policy,
            active,
        }
    }

    #[test]
    fn nothing_is_due_before_the_first_time() {
        let s = Schedule::parse("*/5 * * * *").expect("valid");
        let i = inputs(&s, "2026-12-02T10:01:00Z", "Allow", &[]);
        let (d, next) = decide(&i, t("2026-12-02T10:04:59Z"));
        assert_eq!(d, Decision::Wait);
        let next = next.expect("next");
        assert_eq!(next.timestamp(), t("2026-12-02T10:05:00Z"));
        assert_eq!(
            wait_until(&next, t("2026-12-02T10:04:59Z")),
            Duration::from_millis(1_100)
        );
    }

    #[test]
    fn the_latest_due_time_starts_and_missed_ones_are_counted() {
        let s = Schedule::parse("* * * * *").expect("valid");
        let i = inputs(&s, "2026-12-02T10:00:00Z", "Allow", &[]);
        let (d, _) = decide(&i, t("2026-12-02T10:03:30Z"));
        let Decision::Start {
            scheduled,
            replace,
            missed,
        } = d
        else {
            panic!("{d:?}");
        };
        assert_eq!(scheduled.timestamp(), t("2026-12-02T10:03:00Z"));
        assert!(replace.is_empty());
        assert_eq!(missed, 2);
        assert_eq!(job_name("tick", &scheduled, &s), "tick-29936763");
    }

    #[test]
    fn forbid_skips_and_replace_replaces_while_a_job_runs() {
        let s = Schedule::parse("* * * * *").expect("valid");
        let running = ["tick-1".to_owned()];
        let now = t("2026-12-02T10:01:10Z");
        let (d, _) = decide(&inputs(&s, "2026-12-02T10:00:00Z", "Forbid", &running), now);
        assert!(matches!(d, Decision::Skip { .. }), "{d:?}");
        let (d, _) = decide(
            &inputs(&s, "2026-12-02T10:00:00Z", "Replace", &running),
            now,
        );
        assert!(
            matches!(&d, Decision::Start { replace, .. } if replace == &running),
            "{d:?}"
        );
        let (d, _) = decide(&inputs(&s, "2026-12-02T10:00:00Z", "Allow", &running), now);
        assert!(
            matches!(&d, Decision::Start { replace, .. } if replace.is_empty()),
            "{d:?}"
        );
    }

    #[test]
    fn a_starting_deadline_drops_times_too_old() {
        let s = Schedule::parse("0 * * * *").expect("valid");
        let mut i = inputs(&s, "2026-12-02T09:30:00Z", "Allow", &[]);
        i.starting_deadline = Some(60);
        // 10:00 was due; at 10:00:30 it may start, at 10:05 it is too late.
        let (d, _) = decide(&i, t("2026-12-02T10:00:30Z"));
        assert!(matches!(d, Decision::Start { .. }), "{d:?}");
        let (d, next) = decide(&i, t("2026-12-02T10:05:00Z"));
        assert_eq!(d, Decision::Wait);
        assert_eq!(next.expect("next").timestamp(), t("2026-12-02T11:00:00Z"));
    }

    #[test]
    fn every_schedules_name_jobs_by_the_second() {
        let s = Schedule::parse("@every 5s").expect("valid");
        let i = inputs(&s, "2026-12-02T10:00:00Z", "Allow", &[]);
        let (d, next) = decide(&i, t("2026-12-02T10:00:07Z"));
        let Decision::Start { scheduled, .. } = d else {
            panic!("{d:?}");
        };
        assert_eq!(scheduled.timestamp(), t("2026-12-02T10:00:05Z"));
        assert_eq!(job_name("fast", &scheduled, &s), "fast-1796205605");
        assert_eq!(next.expect("next").timestamp(), t("2026-12-02T10:00:12Z"));
    }
}
