//! CronJob schedules, as Kubernetes reads them (robfig/cron's standard parser): five fields
//! (minute, hour, day of month, month, day of week) with `*`, `?`, lists, ranges, steps, month
//! and weekday names; the descriptors `@yearly` (`@annually`), `@monthly`, `@weekly`,
//! `@daily` (`@midnight`), `@hourly` and `@every <duration>`. `TZ=` prefixes are refused, as
//! the apiserver refuses them: the `timeZone` field sets the zone.
//!
//! [`Schedule::next_after`] answers the first time the schedule fires after a given instant,
//! in a time zone (wall-clock times that a DST change skips fire at the first instant after
//! the gap; times it repeats fire once).

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// Why a schedule cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Fires when every field matches.
    Fields(Fields),
    /// `@every 1h30m`: fires each interval after the previous time.
    Every(Duration),
}

/// The five fields as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Day of month or day of week was `*` or `?`: both must match. Otherwise either may.
    any_day: bool,
}

struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ],
    },
    Field {
        name: "day of week",
        min: 0,
        max: 6,
        names: &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
    },
];

/// Checks a schedule; `None` when valid, else what is wrong.
pub fn check(schedule: &str) -> Option<String> {
    Schedule::parse(schedule).err().map(|e| e.0)
}

impl Schedule {
    /// Reads a schedule.
    pub fn parse(text: &str) -> Result<Schedule, CronError> {
        let text = text.trim();
        if text.starts_with("TZ=") || text.starts_with("CRON_TZ=") {
            return Err(CronError(
                "TZ and CRON_TZ are not allowed in the schedule: use the timeZone field".into(),
            ));
        }
        if let Some(descriptor) = text.strip_prefix('@') {
            let fields = match descriptor {
                "yearly" | "annually" => "0 0 1 1 *",
                "monthly" => "0 0 1 * *",
                "weekly" => "0 0 * * 0",
                "daily" | "midnight" => "0 0 * * *",
                "hourly" => "0 * * * *",
                d if d.starts_with("every ") => {
                    let every = d["every ".len()..].trim();
                    return match crate::duration::parse(every) {
                        Ok(d) if d >= Duration::from_secs(1) => Ok(Schedule::Every(d)),
                        _ => Err(CronError(format!("invalid duration in @every {every:?}"))),
                    };
                }
                _ => return Err(CronError(format!("unknown descriptor @{descriptor}"))),
            };
            return Schedule::parse(fields);
        }
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
                parts.len()
            )));
        }
        let mut sets = [0u64; 5];
        let mut stars = [false; 5];
        for (i, (part, field)) in parts.iter().zip(&FIELDS).enumerate() {
            let (set, star) = parse_field(part, field)
                .map_err(|p| CronError(format!("{} field {part:?}: {p}", field.name)))?;
            sets[i] = set;
            stars[i] = star;
        }
        Ok(Schedule::Fields(Fields {
            minutes: sets[0],
            hours: sets[1],
            days: sets[2],
            months: sets[3],
            weekdays: sets[4],
            any_day: stars[2] || stars[4],
        }))
    }

    /// The first time after `after` the schedule fires, in `after`'s time zone; `None` when it
    /// never does within five years (`0 0 30 2 *`).
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        match self {
            Schedule::Every(every) => {
                let step = jiff::SignedDuration::try_from(*every).ok()?;
                let next = after.timestamp().checked_add(step).ok()?;
                // Whole seconds, as robfig's @every.
                let whole = Timestamp::from_second(next.as_second()).ok()?;
                Some(whole.to_zoned(after.time_zone().clone()))
            }
            Schedule::Fields(f) => f.next_after(after),
        }
    }

    /// The latest time at or before `now` the schedule fired after `since`, and how many such
    /// times there were (counting stops at `limit`).
    pub fn latest_between(
        &self,
        since: &Zoned,
        now: &Zoned,
        limit: usize,
    ) -> (Option<Zoned>, usize) {
        let mut latest = None;
        let mut count = 0;
        let mut t = since.clone();
        while let Some(next) = self.next_after(&t) {
            if next.timestamp() > now.timestamp() {
                break;
            }
            count += 1;
            t = next.clone();
            latest = Some(next);
            if count >= limit {
                // Too many to walk: jump close to now and find the last one from there.
                let back = now.timestamp().checked_sub(2.hours()).ok();
                if let Some(back) = back.filter(|b| *b > t.timestamp()) {
                    t = back.to_zoned(now.time_zone().clone());
                }
                while let Some(next) = self.next_after(&t) {
                    if next.timestamp() > now.timestamp() {
                        break;
                    }
                    t = next.clone();
                    latest = Some(next);
                }
                break;
            }
        }
        (latest, count)
    }
}

impl Fields {
    fn day_matches(&self, date: Date) -> bool {
        let day = bit(self.days, date.day() as u32);
        let weekday = bit(self.weekdays, date.weekday().to_sunday_zero_offset() as u32);
        if self.any_day {
            day && weekday
        } else {
            day || weekday
        }
    }

    fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz: &TimeZone = after.time_zone();
        // From the next whole minute, wall-clock time.
        let start = after.datetime().checked_add(1.minute()).ok()?;
        let mut t = DateTime::new(
            start.year(),
            start.month(),
            start.day(),
            start.hour(),
            start.minute(),
            0,
            0,
        )
        .ok()?;
        let end = t.checked_add(5.years()).ok()?;
        while t < end {
            if !bit(self.months, t.month() as u32) {
                let first = t.date().first_of_month().checked_add(1.month()).ok()?;
                t = first.to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t
                    .date()
                    .tomorrow()
                    .ok()?
                    .to_datetime(jiff::civil::Time::midnight());
                continue;
            }
            if !bit(self.hours, t.hour() as u32) {
                t = DateTime::new(t.year(), t.month(), t.day(), t.hour(), 0, 0, 0)
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if !bit(self.minutes, t.minute() as u32) {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            // A time a DST gap skips resolves to just after the gap; a repeated one to its
            // first occurrence.
            if let Ok(zoned) = tz.to_ambiguous_zoned(t).compatible()
                && zoned.timestamp() > after.timestamp()
            {
                return Some(zoned);
            }
            t = t.checked_add(1.minute()).ok()?;
        }
        None
    }
}

fn bit(set: u64, n: u32) -> bool {
    n < 64 && set & (1 << n) != 0
}

fn value(text: &str, field: &Field) -> Result<u32, String> {
    let n = match text.parse::<u32>() {
        Ok(n) => n,
        Err(_) => field
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
            .map(|i| i as u32 + field.min)
            .ok_or_else(|| format!("{text:?} is not a number"))?,
    };
    if n < field.min || n > field.max {
        return Err(format!("{n} is out of range {}-{}", field.min, field.max));
    }
    Ok(n)
}

/// A field's set, and whether it was `*` or `?` (unstepped).
fn parse_field(text: &str, field: &Field) -> Result<(u64, bool), String> {
    let mut set = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => match step.parse::<u32>() {
                Ok(0) => return Err("step must be at least 1".into()),
                Ok(s) => (range, Some(s)),
                Err(_) => return Err(format!("step {step:?} is not a number")),
            },
            None => (part, None),
        };
        let (low, high) = if range == "*" || range == "?" {
            star |= step.is_none_or(|s| s == 1);
            (field.min, field.max)
        } else {
            match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(a, field)?, value(b, field)?);
                    if a > b {
                        return Err(format!("range {a}-{b} is backwards"));
                    }
                    (a, b)
                }
                // `5/15` runs from 5 to the end.
                None => {
                    let a = value(range, field)?;
                    (a, if step.is_some() { field.max } else { a })
                }
            }
        };
        let step = step.unwrap_or(1) as usize;
        for n in (low..=high).step_by(step) {
            set |= 1 << n;
        }
    }
    Ok((set, star))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, tz: &str) -> Zoned {
        let tz = TimeZone::get(tz).expect("time zone");
        text.parse::<DateTime>()
            .expect("datetime")
            .to_zoned(tz)
            .expect("zoned")
    }

    fn next(schedule: &str, after: &Zoned) -> String {
        let s = Schedule::parse(schedule).expect("valid");
        s.next_after(after).expect("fires").datetime().to_string()
    }

    #[test]
    fn valid_and_invalid_schedules() {
        for s in [
            "*/5 * * * *",
            "0 0 * * *",
            "15 3 1,15 * MON-FRI",
            "0 0 ? JAN sun",
            "@hourly",
            "@every 1h30m",
            "0-59/10 1-5 * * 0",
        ] {
            assert_eq!(check(s), None, "{s}");
        }
        for s in [
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "@often",
            "TZ=UTC 0 * * * *",
            "* * * * 7",
            "a * * * *",
            "@every soon",
        ] {
            assert!(check(s).is_some(), "{s}");
        }
        assert_eq!(
            check("61 * * * *").as_deref(),
            Some("minute field \"61\": 61 is out of range 0-59")
        );
    }

    #[test]
    fn next_times() {
        let t = at("2026-12-02T15:37:20", "UTC");
        assert_eq!(next("* * * * *", &t), "2026-12-02T15:38:00");
        assert_eq!(next("*/15 * * * *", &t), "2026-12-02T15:45:00");
        assert_eq!(next("@hourly", &t), "2026-12-02T16:00:00");
        assert_eq!(next("@daily", &t), "2026-12-03T00:00:00");
        assert_eq!(next("@weekly", &t), "2026-12-06T00:00:00", "a Sunday");
        assert_eq!(next("@monthly", &t), "2027-01-01T00:00:00");
        assert_eq!(next("@yearly", &t), "2027-01-01T00:00:00");
        assert_eq!(next("30 9 * * MON-FRI", &t), "2026-12-03T09:30:00");
        assert_eq!(next("0 0 29 2 *", &t), "2028-02-29T00:00:00");
        assert_eq!(next("5/20 * * * *", &t), "2026-12-02T15:45:00");
        // Day of month or day of week when both are restricted: the 13th or a Friday.
        assert_eq!(next("0 0 13 * 5", &t), "2026-12-04T00:00:00");
        assert_eq!(next("0 0 13 * *", &t), "2026-12-13T00:00:00");
        assert_eq!(next("@every 90s", &t), "2026-12-02T15:38:50");
        assert!(
            Schedule::parse("0 0 30 2 *")
                .expect("valid")
                .next_after(&t)
                .is_none()
        );
    }

    #[test]
    fn time_zones_and_daylight_saving() {
        // 02:30 does not exist in New York on 2027-03-14: the run happens at 03:00 local.
        let before = at("2027-03-14T01:00:00", "America/New_York");
        let s = Schedule::parse("30 2 * * *").expect("valid");
        let fired = s.next_after(&before).expect("fires");
        assert_eq!(fired.datetime().to_string(), "2027-03-14T03:30:00");
        // 01:30 happens twice on 2027-11-07: once.
        let before = at("2027-11-07T00:00:00", "America/New_York");
        let s = Schedule::parse("30 1 * * *").expect("valid");
        let first = s.next_after(&before).expect("fires");
        assert_eq!(first.datetime().to_string(), "2027-11-07T01:30:00");
        let second = s.next_after(&first).expect("fires");
        assert_eq!(second.datetime().to_string(), "2027-11-08T01:30:00");
        // Midnight in Tokyo is 15:00 UTC.
        let utc = at("2026-12-02T14:00:00", "UTC");
        let tokyo = utc.with_time_zone(TimeZone::get("Asia/Tokyo").expect("zone"));
        let fired = Schedule::parse("@daily")
            .expect("valid")
            .next_after(&tokyo)
            .expect("fires");
        assert_eq!(fired.timestamp().to_string(), "2026-12-02T15:00:00Z");
    }

    #[test]
    fn missed_times_are_counted() {
        let since = at("2026-12-02T10:00:00", "UTC");
        let now = at("2026-12-02T10:05:30", "UTC");
        let s = Schedule::parse("* * * * *").expect("valid");
        let (latest, count) = s.latest_between(&since, &now, 100);
        assert_eq!(count, 5);
        assert_eq!(
            latest.expect("one").datetime().to_string(),
            "2026-12-02T10:05:00"
        );
        let long_ago = at("2026-11-01T00:00:00", "UTC");
        let (latest, count) = s.latest_between(&long_ago, &now, 100);
        assert_eq!(count, 100);
        assert_eq!(
            latest.expect("one").datetime().to_string(),
            "2026-12-02T10:05:00"
        );
        let (latest, count) = s.latest_between(&now, &now, 100);
        assert_eq!((latest, count), (None, 0));
    }
}
