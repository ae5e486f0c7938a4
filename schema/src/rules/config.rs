//! Rules on ConfigMaps and Secrets: key syntax, keys given twice across `data` and
//! `binaryData`/`stringData`, and base64 in a Secret's `data`.

use std::collections::HashSet;

use serde_json::Value;

use super::Findings;
use crate::pointer::JsonPointer;

/// A config key: up to 253 of letters, digits, `-`, `_` and `.`, and not `.` or `..`.
pub fn check_key(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key != "."
        && key != ".."
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        None
    } else {
        Some(format!(
            "invalid key {key:?}: up to 253 letters, digits, '-', '_' or '.' (and not '.' or '..')"
        ))
    }
}

fn keys(object: &Value, fields: &[&str], out: &mut Findings) {
    let mut seen = HashSet::new();
    for field in fields {
        let Some(map) = object[*field].as_object() else {
            continue;
        };
        for key in map.keys() {
            let at = JsonPointer::root().join(field).join(key);
            if let Some(problem) = check_key(key) {
                out.add_key(at, problem);
            } else if !seen.insert(key.as_str()) {
                out.add_key(
                    at,
                    format!(
                        "key {key:?} is given in more than one of {}",
                        fields.join(", ")
                    ),
                );
            }
        }
    }
}

/// Checks a ConfigMap.
pub fn check_config_map(object: &Value, out: &mut Findings) {
    keys(object, &["data", "binaryData"], out);
    for (key, value) in object["binaryData"].as_object().into_iter().flatten() {
        if let Some(text) = value.as_str()
            && let Some(problem) = base64_problem(text)
        {
            out.add(JsonPointer::root().join("binaryData").join(key), problem);
        }
    }
}

/// Checks a Secret.
pub fn check_secret(object: &Value, out: &mut Findings) {
    keys(object, &["data"], out);
    keys(object, &["stringData"], out);
    for (key, value) in object["data"].as_object().into_iter().flatten() {
        if let Some(text) = value.as_str()
            && let Some(problem) = base64_problem(text)
        {
            out.add(JsonPointer::root().join("data").join(key), problem);
        }
    }
}

/// Standard base64 with padding, as Go's `encoding/base64.StdEncoding` decodes it.
fn base64_problem(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let body = text.trim_end_matches('=');
    let padding = bytes.len() - body.len();
    let bad = body
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'+' || b == b'/'));
    if let Some(at) = bad {
        return Some(format!(
            "not valid base64: illegal character at offset {at} (use stringData for plain text)"
        ));
    }
    if !bytes.len().is_multiple_of(4) || padding > 2 {
        return Some(
            "not valid base64: length is not a multiple of 4 (use stringData for plain text)"
                .into(),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_problem("aGVsbG8="), None);
        assert_eq!(base64_problem(""), None);
        assert!(base64_problem("hello world").is_some());
        assert!(base64_problem("aGVsbG8").is_some());
    }

    #[test]
    fn config_keys() {
        assert!(check_key("app.properties").is_none());
        assert!(check_key("a/b").is_some());
        assert!(check_key("..").is_some());
    }
}
