//! Resource quantities (`100m`, `1Gi`, `0.5`, `1e3`): parsing to a number for comparisons.
//! The schema checks the syntax; this turns a valid quantity into its value.

use serde_json::Value;

/// The value of a quantity, as a float (exact enough to compare requests with limits).
pub fn parse(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => parse_str(s),
        _ => None,
    }
}

fn parse_str(s: &str) -> Option<f64> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '+' | '-')))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powf(exp[1..].parse::<f64>().ok()?),
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values() {
        assert_eq!(parse(&json!("100m")), Some(0.1));
        assert_eq!(parse(&json!("1Gi")), Some(1073741824.0));
        assert_eq!(parse(&json!("1.5k")), Some(1500.0));
        assert_eq!(parse(&json!("2e3")), Some(2000.0));
        assert_eq!(parse(&json!(0.5)), Some(0.5));
        assert_eq!(parse(&json!("1Gib")), None);
        assert_eq!(parse(&json!("abc")), None);
    }
}
