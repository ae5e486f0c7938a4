//! CronJob schedules: the five-field cron syntax Kubernetes accepts (minute, hour, day of month,
//! month, day of week; `*`, `?`, lists, ranges, steps, month and weekday names) and the
//! `@hourly`-style descriptors. `TZ=` prefixes are refused, as the apiserver does: the
//! `timeZone` field is the way to set a zone.

/// Checks a schedule; `None` when valid, else what is wrong.
pub fn check(schedule: &str) -> Option<String> {
    let schedule = schedule.trim();
    if schedule.starts_with("TZ=") || schedule.starts_with("CRON_TZ=") {
        return Some(
            "TZ and CRON_TZ are not allowed in the schedule: use the timeZone field".into(),
        );
    }
    if let Some(descriptor) = schedule.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => None,
            d if d.starts_with("every ") => check_every(&d[6..]),
            _ => Some(format!("unknown descriptor @{descriptor}")),
        };
    }
    let fields: Vec<&str> = schedule.split_whitespace().collect();
    if fields.len() != 5 {
        return Some(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), found {}",
            fields.len()
        ));
    }
    const FIELDS: [(&str, u32, u32, &[&str]); 5] = [
        ("minute", 0, 59, &[]),
        ("hour", 0, 23, &[]),
        ("day of month", 1, 31, &[]),
        (
            "month",
            1,
            12,
            &[
                "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
            ],
        ),
        (
            "day of week",
            0,
            6,
            &["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
        ),
    ];
    for (field, (name, min, max, names)) in fields.iter().zip(FIELDS) {
        if let Err(problem) = check_field(field, min, max, names) {
            return Some(format!("{name} field {field:?}: {problem}"));
        }
    }
    None
}

fn check_every(duration: &str) -> Option<String> {
    let d = duration.trim();
    let ok = !d.is_empty()
        && d.split_inclusive(|c: char| c.is_ascii_alphabetic())
            .all(|part| {
                let unit_start = part
                    .find(|c: char| c.is_ascii_alphabetic())
                    .unwrap_or(part.len());
                part[..unit_start].parse::<f64>().is_ok()
            })
        && d.ends_with(['h', 'm', 's']);
    if ok {
        None
    } else {
        Some(format!("invalid duration in @every {d:?}"))
    }
}

fn value(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    let n = match text.parse::<u32>() {
        Ok(n) => n,
        Err(_) => names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(text))
            .map(|i| i as u32 + min)
            .ok_or_else(|| format!("{text:?} is not a number"))?,
    };
    if n < min || n > max {
        return Err(format!("{n} is out of range {min}-{max}"));
    }
    Ok(n)
}

fn check_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<(), String> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(0) => return Err("step must be at least 1".into()),
                Ok(_) => {}
                Err(_) => return Err(format!("step {step:?} is not a number")),
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        match range.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (value(a, min, max, names)?, value(b, min, max, names)?);
                if a > b {
                    return Err(format!("range {a}-{b} is backwards"));
                }
            }
            None => {
                value(range, min, max, names)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn valid_schedules() {
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
    }

    #[test]
    fn invalid_schedules() {
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
        ] {
            assert!(check(s).is_some(), "{s}");
        }
    }
}
