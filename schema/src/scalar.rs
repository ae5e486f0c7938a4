//! Resolution of plain YAML scalars to JSON values, the way Kubernetes reads YAML.
//!
//! kubectl and the apiserver read YAML through `sigs.k8s.io/yaml`, which follows YAML 1.1
//! rules: `yes`/`no`/`on`/`off` are booleans, `0x1F` and `0o17` are integers, `~` is null.
//! Manifests rely on these rules (a ConfigMap value `on` is a boolean, and is rejected
//! because ConfigMap data must be strings), so the validator must resolve scalars the same way.

use serde_json::{Number, Value};

/// What a plain scalar resolves to.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolved {
    /// A JSON value (null, bool, number or string).
    Value(Value),
    /// A float that JSON cannot hold (`.inf`, `.nan`).
    NotRepresentable,
}

/// Resolves a plain (unquoted, untagged) scalar, reusing its buffer when it stays a string.
pub fn resolve_plain_owned(text: String) -> Resolved {
    match text.bytes().next() {
        Some(b) if b.is_ascii_digit() || b"+-.~nNyYtTfFoO".contains(&b) => resolve_plain(&text),
        Some(_) => Resolved::Value(Value::String(text)),
        None => Resolved::Value(Value::Null),
    }
}

/// Resolves a plain (unquoted, untagged) scalar.
pub fn resolve_plain(text: &str) -> Resolved {
    let Some(first) = text.bytes().next() else {
        return Resolved::Value(Value::Null);
    };
    match first {
        b'~' | b'n' | b'N' => {
            if matches!(text, "~" | "null" | "Null" | "NULL") {
                return Resolved::Value(Value::Null);
            }
        }
        _ => {}
    }
    if let Some(b) = resolve_bool(text) {
        return Resolved::Value(Value::Bool(b));
    }
    if !(first.is_ascii_digit() || matches!(first, b'+' | b'-' | b'.')) {
        return Resolved::Value(Value::String(text.to_owned()));
    }
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Resolved::NotRepresentable,
        _ => {}
    }
    if let Some(n) = resolve_int(text) {
        return Resolved::Value(Value::Number(n));
    }
    if let Some(f) = resolve_float(text) {
        return match Number::from_f64(f) {
            Some(n) => Resolved::Value(Value::Number(n)),
            None => Resolved::NotRepresentable,
        };
    }
    Resolved::Value(Value::String(text.to_owned()))
}

/// The YAML 1.1 booleans that `sigs.k8s.io/yaml` accepts.
pub fn resolve_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

fn resolve_int(text: &str) -> Option<Number> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || !body.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let cleaned: std::borrow::Cow<'_, str> = if body.contains('_') {
        body.replace('_', "").into()
    } else {
        body.into()
    };
    let (digits, radix) = if let Some(rest) = cleaned.strip_prefix("0x") {
        (rest, 16)
    } else if let Some(rest) = cleaned.strip_prefix("0o") {
        (rest, 8)
    } else if let Some(rest) = cleaned.strip_prefix("0b") {
        (rest, 2)
    } else if cleaned.len() > 1 && cleaned.starts_with('0') {
        (&cleaned[1..], 8)
    } else {
        (&*cleaned, 10)
    };
    if digits.is_empty() {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        if magnitude <= i64::MAX as u64 {
            Some(Number::from(-(magnitude as i64)))
        } else if magnitude == i64::MAX as u64 + 1 {
            Some(Number::from(i64::MIN))
        } else {
            None
        }
    } else {
        Some(Number::from(magnitude))
    }
}

fn resolve_float(text: &str) -> Option<f64> {
    // Go's ParseFloat grammar for decimal floats: digits, one dot, an optional exponent.
    let bytes = text.as_bytes();
    let mut i = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let mut digits = 0;
    while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
        digits += usize::from(bytes[i].is_ascii_digit());
        i += 1;
    }
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'_') {
            digits += usize::from(bytes[i].is_ascii_digit());
            i += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < bytes.len() && matches!(bytes[i], b'e' | b'E') {
        i += 1;
        if i < bytes.len() && matches!(bytes[i], b'+' | b'-') {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    text.replace('_', "").parse::<f64>().ok()
}

/// Turns a resolved mapping key into the JSON object key Kubernetes would use.
pub fn key_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(text: &str) -> Value {
        match resolve_plain(text) {
            Resolved::Value(v) => v,
            Resolved::NotRepresentable => panic!("{text} not representable"),
        }
    }

    #[test]
    fn kubernetes_yaml_scalars() {
        assert_eq!(v(""), Value::Null);
        assert_eq!(v("~"), Value::Null);
        assert_eq!(v("null"), Value::Null);
        assert_eq!(v("nullable"), json!("nullable"));
        assert_eq!(v("yes"), json!(true));
        assert_eq!(v("Off"), json!(false));
        assert_eq!(v("y"), json!(true));
        assert_eq!(v("42"), json!(42));
        assert_eq!(v("-42"), json!(-42));
        assert_eq!(v("+7"), json!(7));
        assert_eq!(v("0x1F"), json!(31));
        assert_eq!(v("0o17"), json!(15));
        assert_eq!(v("017"), json!(15));
        assert_eq!(v("0b101"), json!(5));
        assert_eq!(v("1_000"), json!(1000));
        assert_eq!(v("0.5"), json!(0.5));
        assert_eq!(v("1e3"), json!(1000.0));
        assert_eq!(v(".5"), json!(0.5));
        assert_eq!(v("100m"), json!("100m"));
        assert_eq!(v("1Gi"), json!("1Gi"));
        assert_eq!(v("1.2.3"), json!("1.2.3"));
        assert_eq!(v("-"), json!("-"));
        assert_eq!(v("08"), json!(8.0));
        assert_eq!(v("18446744073709551615"), json!(18446744073709551615u64));
        assert_eq!(v("99999999999999999999"), json!(1e20));
        assert_eq!(resolve_plain(".inf"), Resolved::NotRepresentable);
        assert_eq!(resolve_plain(".nan"), Resolved::NotRepresentable);
    }

    #[test]
    fn keys_become_strings() {
        assert_eq!(key_text(json!(true)), "true");
        assert_eq!(key_text(json!(8080)), "8080");
        assert_eq!(key_text(Value::Null), "null");
        assert!(
            matches!(resolve_plain_owned("web".into()), Resolved::Value(Value::String(s)) if s == "web")
        );
    }
}
