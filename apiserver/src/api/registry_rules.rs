//! Write rules the kube-apiserver's registries hold for particular kinds, beyond what a schema
//! says: a Secret's `stringData` merged into `data`, a Secret's `type` fixed once set, the
//! keys a TLS Secret must carry, `immutable: true` ConfigMaps and Secrets, the 1 MiB limit on a
//! ConfigMap's data. Messages are worded as Kubernetes words them.

use base64::Engine as _;
use ferry_schema::kinds::KindInfo;
use serde_json::{Value, json};

use super::status::Cause;

/// The most data a ConfigMap or Secret may hold (Kubernetes' `MaxSecretSize`).
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

fn is(kind: &KindInfo, name: &str) -> bool {
    kind.group.is_empty() && kind.kind == name
}

/// Normalises what a Secret was written with: `stringData` entries are encoded into `data`
/// (winning over a `data` entry of the same key) and `stringData` is dropped, as Kubernetes
/// stores it.
pub fn normalize(kind: &KindInfo, object: &mut Value) {
    if !is(kind, "Secret") {
        return;
    }
    let Some(map) = object.as_object_mut() else {
        return;
    };
    let Some(string_data) = map.remove("stringData") else {
        return;
    };
    let Value::Object(entries) = string_data else {
        return;
    };
    if entries.is_empty() {
        return;
    }
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (key, value) in entries {
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        data[key] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

fn forbidden_when_immutable(field: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden",
        field: field.into(),
        message: "Forbidden: field is immutable when `immutable` is set".into(),
    }
}

/// What an object of the kind must satisfy on every write.
pub fn check(kind: &KindInfo, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if is(kind, "Secret") && object["type"] == "kubernetes.io/tls" {
        for key in ["tls.crt", "tls.key"] {
            if object["data"].get(key).is_none() {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    field: format!("data[{key}]"),
                    message: "Required value".into(),
                });
            }
        }
    }
    if is(kind, "ConfigMap") || is(kind, "Secret") {
        let mut size = 0;
        for field in ["data", "binaryData"] {
            for (key, value) in object[field].as_object().into_iter().flatten() {
                let len = value.as_str().map_or(0, |v| {
                    // Secret data and binaryData are base64: count the decoded bytes.
                    if is(kind, "Secret") || field == "binaryData" {
                        v.len() / 4 * 3
                    } else {
                        v.len()
                    }
                });
                size += key.len() + len;
            }
        }
        if size > MAX_DATA_BYTES {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "[]".into(),
                message: format!("Too long: must have at most {MAX_DATA_BYTES} bytes"),
            });
        }
    }
    causes
}

/// What an update from `old` to `new` must satisfy.
pub fn check_update(kind: &KindInfo, old: &Value, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if !(is(kind, "ConfigMap") || is(kind, "Secret")) {
        return causes;
    }
    if is(kind, "Secret") && old["type"] != new["type"] {
        causes.push(Cause {
            reason: "FieldValueInvalid",
            field: "type".into(),
            message: format!("Invalid value: {}: field is immutable", new["type"]),
        });
    }
    if old["immutable"] == json!(true) {
        if new["immutable"] != json!(true) {
            causes.push(forbidden_when_immutable("immutable"));
        }
        for field in ["data", "binaryData"] {
            let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
            let (before, after) = (&old[field], &new[field]);
            if before != after && !(empty(before) && empty(after)) {
                causes.push(forbidden_when_immutable(field));
            }
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schema::kinds::KINDS;

    fn kind(name: &str) -> &'static KindInfo {
        KINDS
            .iter()
            .find(|k| k.group.is_empty() && k.kind == name)
            .expect("kind")
    }

    #[test]
    fn string_data_is_merged_into_data() {
        let mut secret =
            json!({"data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "hello", "c": "x"}});
        normalize(kind("Secret"), &mut secret);
        assert_eq!(
            secret,
            json!({"data": {"a": "eA==", "b": "aGVsbG8=", "c": "eA=="}})
        );
    }

    #[test]
    fn immutable_config_maps_and_secret_types_hold() {
        let cm = kind("ConfigMap");
        let old = json!({"immutable": true, "data": {"k": "v"}});
        assert!(check_update(cm, &old, &old).is_empty());
        let changed = json!({"immutable": true, "data": {"k": "w"}});
        let causes = check_update(cm, &old, &changed);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "data");
        let unset = json!({"data": {"k": "v"}});
        assert_eq!(check_update(cm, &old, &unset)[0].field, "immutable");
        let secret = kind("Secret");
        let causes = check_update(
            secret,
            &json!({"type": "Opaque"}),
            &json!({"type": "kubernetes.io/tls"}),
        );
        assert_eq!(
            causes[0].message,
            "Invalid value: \"kubernetes.io/tls\": field is immutable"
        );
    }

    #[test]
    fn tls_secrets_need_their_keys_and_config_maps_their_size() {
        let causes = check(
            kind("Secret"),
            &json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}),
        );
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "data[tls.key]");
        let big = "x".repeat(MAX_DATA_BYTES + 1);
        assert_eq!(
            check(kind("ConfigMap"), &json!({"data": {"k": big}})).len(),
            1
        );
    }
}
