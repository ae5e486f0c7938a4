//! Resource quantities (`100m`, `1Gi`, `0.5`, `1e3`) with exact arithmetic: the one copy every
//! part of ferry uses (the validator compares requests with limits; the scheduler sums the
//! requests on a node, where a float would drift).
//!
//! A quantity is held as a whole number of nano-units (10⁻⁹, the smallest suffix Kubernetes
//! has) in an `i128`, so sums of exabytes and of millicores are both exact. Like Kubernetes, a
//! value finer than a nano-unit is rounded up. The format (binary `Ki`.. or decimal `k`..)
//! of a parsed quantity is kept for printing.

use std::cmp::Ordering;
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Sub};

use serde_json::Value;

/// Nano-units per unit.
const NANO: i128 = 1_000_000_000;

/// Why a text is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a number with an optional suffix.
    #[error(
        "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {0:?}"
    )]
    Syntax(String),
    /// Too large to hold.
    #[error("quantity {0:?} is too large")]
    Overflow(String),
}

/// How a quantity is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// `1Ki`, `1Mi`, ...
    BinarySi,
    /// `1k`, `100m`, plain numbers.
    #[default]
    DecimalSi,
    /// `1e3`.
    DecimalExponent,
}

/// An exact resource quantity.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quantity {
    nanos: i128,
    format: Format,
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

fn pow(base: i128, exp: u32) -> Option<i128> {
    base.checked_pow(exp)
}

impl Quantity {
    /// Zero.
    pub const ZERO: Quantity = Quantity {
        nanos: 0,
        format: Format::DecimalSi,
    };

    /// A whole number of units (`pods: 110`, `nvidia.com/gpu: 1`).
    pub fn from_units(units: i64) -> Quantity {
        Quantity {
            nanos: i128::from(units) * NANO,
            format: Format::DecimalSi,
        }
    }

    /// A number of milli-units (`cpu: 250m`).
    pub fn from_millis(millis: i64) -> Quantity {
        Quantity {
            nanos: i128::from(millis) * 1_000_000,
            format: Format::DecimalSi,
        }
    }

    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let bad = || QuantityError::Syntax(text.to_owned());
        let overflow = || QuantityError::Overflow(text.to_owned());
        let s = text.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(split);
        let (negative, digits) = match number.as_bytes().first() {
            Some(b'-') => (true, &number[1..]),
            Some(b'+') => (false, &number[1..]),
            _ => (false, number),
        };
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if (whole.is_empty() && fraction.is_empty())
            || !whole.chars().all(|c| c.is_ascii_digit())
            || !fraction.chars().all(|c| c.is_ascii_digit())
        {
            return Err(bad());
        }
        // The mantissa as an integer and its power of ten: "1.25" is 125 × 10⁻².
        let mut mantissa: i128 = 0;
        for c in whole.chars().chain(fraction.chars()) {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(c as u8 - b'0')))
                .ok_or_else(overflow)?;
        }
        let mut exp10: i64 = -(fraction.len() as i64);
        let mut multiplier: i128 = 1;
        let format = match suffix {
            "" => Format::DecimalSi,
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let power = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
                    .iter()
                    .position(|s| *s == suffix)
                    .unwrap_or(0) as u32
                    + 1;
                multiplier = pow(1024, power).ok_or_else(overflow)?;
                Format::BinarySi
            }
            "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => {
                exp10 += match suffix {
                    "n" => -9,
                    "u" => -6,
                    "m" => -3,
                    "k" => 3,
                    "M" => 6,
                    "G" => 9,
                    "T" => 12,
                    "P" => 15,
                    _ => 18,
                };
                Format::DecimalSi
            }
            exp if exp.starts_with(['e', 'E']) => {
                exp10 += exp[1..].parse::<i64>().map_err(|_| bad())?;
                Format::DecimalExponent
            }
            _ => return Err(bad()),
        };
        // nanos = mantissa × multiplier × 10^(exp10 + 9), rounded up.
        let shift = exp10 + 9;
        let scaled = mantissa.checked_mul(multiplier).ok_or_else(overflow)?;
        let nanos = if shift >= 0 {
            let factor =
                pow(10, u32::try_from(shift).map_err(|_| overflow())?).ok_or_else(overflow)?;
            scaled.checked_mul(factor).ok_or_else(overflow)?
        } else {
            let divisor =
                pow(10, u32::try_from(-shift).map_err(|_| overflow())?).unwrap_or(i128::MAX);
            let (q, r) = (scaled / divisor, scaled % divisor);
            if r > 0 { q + 1 } else { q }
        };
        Ok(Quantity {
            nanos: if negative { -nanos } else { nanos },
            format,
        })
    }

    /// From JSON: a string, or a number (as YAML writes `cpu: 1`).
    pub fn from_value(value: &Value) -> Result<Quantity, QuantityError> {
        match value {
            Value::String(s) => Quantity::parse(s),
            Value::Number(n) => Quantity::parse(&n.to_string()),
            other => Err(QuantityError::Syntax(other.to_string())),
        }
    }

    /// The value in milli-units, rounded up (CPU in millicores).
    pub fn milli_value(&self) -> i128 {
        ceil_div(self.nanos, 1_000_000)
    }

    /// The value in whole units, rounded up (memory in bytes, pods, GPUs).
    pub fn value(&self) -> i128 {
        ceil_div(self.nanos, NANO)
    }

    /// The value in nano-units (exact).
    pub fn nano_value(&self) -> i128 {
        self.nanos
    }

    /// Is it zero?
    pub fn is_zero(&self) -> bool {
        self.nanos == 0
    }

    /// The format it was written in.
    pub fn format(&self) -> Format {
        self.format
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    let q = a / b;
    if a % b > 0 { q + 1 } else { q }
}

impl Add for Quantity {
    type Output = Quantity;
    fn add(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_add(other.nanos),
            format: self.format,
        }
    }
}

impl AddAssign for Quantity {
    fn add_assign(&mut self, other: Quantity) {
        *self = *self + other;
    }
}

impl Sub for Quantity {
    type Output = Quantity;
    fn sub(self, other: Quantity) -> Quantity {
        Quantity {
            nanos: self.nanos.saturating_sub(other.nanos),
            format: self.format,
        }
    }
}

impl Sum for Quantity {
    fn sum<I: Iterator<Item = Quantity>>(iter: I) -> Quantity {
        iter.fold(Quantity::ZERO, Add::add)
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    /// The shortest exact form in the quantity's format: `1500m`, `2Gi`, `128974848`, `0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.nanos;
        if n == 0 {
            return f.write_str("0");
        }
        if n % NANO == 0 {
            let units = n / NANO;
            if self.format == Format::BinarySi {
                for (suffix, power) in [
                    ("Ei", 6),
                    ("Pi", 5),
                    ("Ti", 4),
                    ("Gi", 3),
                    ("Mi", 2),
                    ("Ki", 1),
                ] {
                    let size = 1024i128.pow(power);
                    if units % size == 0 {
                        return write!(f, "{}{suffix}", units / size);
                    }
                }
                return write!(f, "{units}");
            }
            for (suffix, power) in [
                ("E", 18),
                ("P", 15),
                ("T", 12),
                ("G", 9),
                ("M", 6),
                ("k", 3),
            ] {
                let size = 10i128.pow(power);
                if units % size == 0 {
                    return write!(f, "{}{suffix}", units / size);
                }
            }
            return write!(f, "{units}");
        }
        if n % 1_000_000 == 0 {
            return write!(f, "{}m", n / 1_000_000);
        }
        if n % 1_000 == 0 {
            return write!(f, "{}u", n / 1_000);
        }
        write!(f, "{n}n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect(s)
    }

    #[test]
    fn parses_every_form_exactly() {
        assert_eq!(q("100m").milli_value(), 100);
        assert_eq!(q("0.1").milli_value(), 100);
        assert_eq!(q("1Gi").value(), 1 << 30);
        assert_eq!(q("1.5k").value(), 1500);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("1E3").value(), 1000);
        assert_eq!(q("128974848").value(), 128_974_848);
        assert_eq!(q("129M").value(), 129_000_000);
        assert_eq!(q("123Mi").value(), 123 * 1024 * 1024);
        assert_eq!(q("8Ei").value(), 8 * 1024i128.pow(6));
        assert_eq!(q("1n").nano_value(), 1);
        assert_eq!(q("-5").value(), -5);
        // Finer than a nano-unit rounds up, as Kubernetes does.
        assert_eq!(q("0.0000000001").nano_value(), 1);
        assert_eq!(
            Quantity::from_value(&json!(0.5))
                .expect("number")
                .milli_value(),
            500
        );
        for bad in ["", "abc", "1Gib", "1.2.3", "m", "1e"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sums_are_exact_where_floats_drift() {
        // Ten thousand 100m requests are exactly 1000 cores.
        let total: Quantity = std::iter::repeat_n(q("100m"), 10_000).sum();
        assert_eq!(total, q("1k"));
        let mut f = 0.0f64;
        for _ in 0..10_000 {
            f += 0.1;
        }
        assert_ne!(f, 1000.0, "the float sum drifts; the exact one does not");
        assert!(q("1Gi") > q("1G"));
        assert_eq!(q("1Gi") - q("512Mi"), q("512Mi"));
    }

    #[test]
    fn prints_the_shortest_exact_form() {
        assert_eq!(q("1500m").to_string(), "1500m");
        assert_eq!(q("2048Mi").to_string(), "2Gi");
        assert_eq!(q("1000").to_string(), "1k");
        assert_eq!(q("0.5").to_string(), "500m");
        assert_eq!(q("0").to_string(), "0");
        assert_eq!(q("1536Ki").to_string(), "1536Ki");
    }
}
