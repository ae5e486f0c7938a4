//! Strategic merge patch (`application/strategic-merge-patch+json`), what `kubectl apply`,
//! `label`, `annotate` and `edit` send for built-in kinds.
//!
//! Like a JSON merge patch, except that lists with a merge key merge item by item (containers
//! by `name`, volume mounts by `mountPath`, ...), some lists of scalars merge as sets
//! (`finalizers`), and these directives are honoured: `$patch: replace|delete|merge` in a map
//! or list item, `$retainKeys`, `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`.

use serde_json::{Map, Value};

/// The merge key of a list field, by field name (Kubernetes' `patchMergeKey` tags). Ports are
/// keyed by `containerPort` in containers and by `port` in Services: both are tried.
fn merge_keys(field: &str) -> &'static [&'static str] {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "readinessGates" => &["name"],
        "volumeMounts" | "volumeDevices" => &["mountPath"],
        "ports" => &["containerPort", "port"],
        "conditions" => &["type"],
        "hostAliases" => &["ip"],
        "ownerReferences" => &["uid"],
        "topologySpreadConstraints" => &["topologyKey"],
        _ => &[],
    }
}

/// Lists of scalars that merge as sets.
fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

/// Applies `patch` to `target`.
pub fn apply(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => merge_map(t, p),
        (target, patch) => *target = strip(patch),
    }
}

/// Removes directives from a value being inserted wholesale.
fn strip(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip).collect()),
        other => other.clone(),
    }
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = match strip(&Value::Object(patch.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return;
        }
        Some("delete") => {
            target.clear();
            return;
        }
        _ => {}
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()) || patch.contains_key(k));
    }
    for (key, value) in patch {
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (target.get_mut(field), value)
            {
                list.retain(|item| !remove.contains(item));
            }
            continue;
        }
        if key.starts_with('$') {
            continue;
        }
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) => match target.get_mut(key) {
                Some(Value::Object(t)) => merge_map(t, p),
                _ => {
                    if p.get("$patch").and_then(Value::as_str) != Some("delete") {
                        target.insert(key.clone(), strip(value));
                    }
                }
            },
            Value::Array(items) => match target.get_mut(key) {
                Some(Value::Array(existing)) => merge_list(key, existing, items),
                _ => {
                    let items: Vec<Value> = items
                        .iter()
                        .filter(|i| i.get("$patch").and_then(Value::as_str) != Some("delete"))
                        .map(strip)
                        .collect();
                    target.insert(key.clone(), Value::Array(items));
                }
            },
            scalar => {
                target.insert(key.clone(), scalar.clone());
            }
        }
    }
}

fn key_of<'a>(item: &'a Value, keys: &[&str]) -> Option<(&'static str, &'a Value)> {
    for k in merge_keys_static(keys) {
        if let Some(v) = item.get(k) {
            return Some((k, v));
        }
    }
    None
}

fn merge_keys_static(keys: &[&str]) -> Vec<&'static str> {
    [
        "name",
        "mountPath",
        "containerPort",
        "port",
        "type",
        "ip",
        "uid",
        "topologyKey",
    ]
    .into_iter()
    .filter(|k| keys.contains(k))
    .collect()
}

fn merge_list(field: &str, existing: &mut Vec<Value>, patch: &[Value]) {
    if patch
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        *existing = patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip)
            .collect();
        return;
    }
    if is_set_list(field) {
        for item in patch {
            if !existing.contains(item) {
                existing.push(item.clone());
            }
        }
        return;
    }
    let keys = merge_keys(field);
    if keys.is_empty() || !patch.iter().all(|i| key_of(i, keys).is_some()) {
        *existing = patch.iter().map(strip).collect();
        return;
    }
    for item in patch {
        let Some((key, value)) = key_of(item, keys) else {
            continue;
        };
        let position = existing.iter().position(|e| e.get(key) == Some(value));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => apply(&mut existing[i], item),
            (None, true) => {}
            (None, false) => existing.push(strip(item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn containers_merge_by_name() {
        let mut pod = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        apply(
            &mut pod,
            &json!({"spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}]}}),
        );
        assert_eq!(
            pod["spec"]["containers"],
            json!([{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}])
        );
    }

    #[test]
    fn directives() {
        let mut obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "args": ["1", "2"]}});
        apply(
            &mut obj,
            &json!({
                "metadata": {"labels": {"a": null, "c": "3"}, "finalizers": ["y"]},
                "spec": {"containers": [{"name": "a", "$patch": "delete"}], "args": ["3"], "$setElementOrder/containers": [{"name": "b"}]}
            }),
        );
        assert_eq!(
            obj,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}, "finalizers": ["x", "y"]}, "spec": {"containers": [{"name": "b"}], "args": ["3"]}})
        );
        let mut obj = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        apply(
            &mut obj,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(obj, json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let mut obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        apply(
            &mut obj,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(obj, json!({"metadata": {"finalizers": ["b"]}}));
    }

    #[test]
    fn service_ports_merge_by_port() {
        let mut svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
        apply(
            &mut svc,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "name": "https"}]}}),
        );
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443, "name": "https"}])
        );
    }
}
