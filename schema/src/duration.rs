//! Durations in Go's form (`1m30s`, `250ms`, `1.5h`, `2h45m`, `1us`, `0`): the one parser of
//! every flag and every field that takes one (a Source's `spec.interval`, `--watch-retention`,
//! the node agent's and the controllers' timings), as `time.ParseDuration` reads them.

use std::time::Duration;

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a sequence of numbers with units.
    #[error("invalid duration {0:?}: use a number with a unit, e.g. 90s, 1m30s, 250ms, 1h")]
    Syntax(String),
    /// A unit Go does not know.
    #[error("unknown unit {unit:?} in duration {text:?}: use ns, us, ms, s, m or h")]
    Unit {
        /// The unit.
        unit: String,
        /// The whole text.
        text: String,
    },
    /// Negative (a std `Duration` cannot be).
    #[error("invalid duration {0:?}: must not be negative")]
    Negative(String),
    /// Too long to hold.
    #[error("duration {0:?} is too long")]
    Overflow(String),
}

/// Nanoseconds per unit.
fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses Go's duration form. A bare `0` is zero; every other number needs a unit.
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    let s = text.trim();
    if let Some(rest) = s.strip_prefix('-') {
        // Only a negative zero fits a std Duration.
        return match parse(rest) {
            Ok(d) if d.is_zero() => Ok(d),
            Ok(_) => Err(DurationError::Negative(text.to_owned())),
            Err(e) => Err(e),
        };
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(syntax());
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(syntax)?;
        let (number, after) = rest.split_at(number_end);
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        if number.is_empty() || number == "." || unit.is_empty() {
            return Err(syntax());
        }
        let per = unit_nanos(unit).ok_or_else(|| DurationError::Unit {
            unit: unit.to_owned(),
            text: text.to_owned(),
        })?;
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if fraction.contains('.') {
            return Err(syntax());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| syntax())?
        };
        let mut nanos = whole
            .checked_mul(per)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        if !fraction.is_empty() {
            let digits = fraction.len().min(30) as u32;
            let value: u128 = fraction[..digits as usize].parse().map_err(|_| syntax())?;
            nanos += value * per / 10u128.pow(digits);
        }
        total = total
            .checked_add(nanos)
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        rest = next;
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::Overflow(text.to_owned()))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Prints a duration as Go does (`1m30s`, `250ms`, `1h0m0s`, `0s`).
pub fn format(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}µs", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let frac = d.subsec_nanos();
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        let text = format!("{s}.{frac:09}");
        format!("{}s", text.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_gos_form() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("2h45m"), Ok(Duration::from_secs(9900)));
        assert_eq!(parse("10us"), Ok(Duration::from_micros(10)));
        assert_eq!(parse("3ns"), Ok(Duration::from_nanos(3)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("-0s"), Ok(Duration::ZERO));
        assert!(matches!(parse("10"), Err(DurationError::Syntax(_))));
        assert!(matches!(parse("10d"), Err(DurationError::Unit { .. })));
        assert!(matches!(parse("-5s"), Err(DurationError::Negative(_))));
        assert!(matches!(parse(""), Err(DurationError::Syntax(_))));
        assert!(matches!(parse("1..5s"), Err(DurationError::Syntax(_))));
    }

    #[test]
    fn prints_gos_form() {
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_millis(250)), "250ms");
        assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format(Duration::ZERO), "0s");
        for d in ["1m30s", "250ms", "1h0m0s", "1.5s"] {
            assert_eq!(format(parse(d).expect(d)), d);
        }
    }
}
