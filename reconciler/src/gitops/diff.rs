//! Per-object diffs for the audit record: a unified diff of the object before and after, with
//! server bookkeeping left out and Secret values redacted (a change shows as a changed digest,
//! never as the value).

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Metadata fields that are bookkeeping, not content.
const NOISE: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
];

/// The object as the audit shows it.
pub fn presentable(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(m) = object["metadata"].as_object_mut() {
        for key in NOISE {
            m.remove(*key);
        }
    }
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
    }
    if object["kind"] == "Secret" && object["apiVersion"] == "v1" {
        for field in ["data", "stringData"] {
            if let Some(values) = object[field].as_object_mut() {
                for value in values.values_mut() {
                    let digest = Sha256::digest(value.to_string().as_bytes());
                    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
                    *value = json!(format!("<redacted sha256:{short}>"));
                }
            }
        }
    }
    object
}

fn text(object: Option<&Value>) -> String {
    match object {
        Some(o) => {
            let mut t = serde_json::to_string_pretty(&presentable(o)).unwrap_or_default();
            t.push('\n');
            t
        }
        None => String::new(),
    }
}

/// A unified diff of `before` → `after` (either may be absent), labelled with `name`.
pub fn unified(name: &str, before: Option<&Value>, after: Option<&Value>) -> String {
    let (old, new) = (text(before), text(after));
    similar::TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{name}"), &format!("b/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_and_noise_is_dropped() {
        let before = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "resourceVersion": "3"}, "data": {"password": "aHVudGVyMg=="}});
        let mut after = before.clone();
        after["data"]["password"] = json!("c2VjcmV0");
        after["metadata"]["resourceVersion"] = json!("4");
        let d = unified("Secret/s", Some(&before), Some(&after));
        assert!(!d.contains("aHVudGVyMg=="), "{d}");
        assert!(!d.contains("c2VjcmV0"), "{d}");
        assert!(d.contains("-    \"password\": \"<redacted sha256:"), "{d}");
        assert!(!d.contains("resourceVersion"), "{d}");
    }
}
