//! Strategic merge patch (`application/strategic-merge-patch+json`), what `kubectl apply`,
//! `label`, `annotate` and `edit` send for built-in kinds.
//!
//! Like a JSON merge patch, except where the field's type says otherwise (see the module
//! above): lists with a patch merge key merge item by item, lists of scalars with the merge
//! strategy merge as sets (`finalizers`), and fields with the `retainKeys` strategy keep only
//! the keys a patch names. These directives are honoured: `$patch: replace|delete|merge` in a
//! map or list item, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
//! `$setElementOrder/<field>`.

use serde_json::{Map, Value};

use super::{FieldShape, TypeShape};

/// Applies `patch` to `target`, whose type is `shape` (see [`TypeShape::of_kind`]).
pub fn strategic_merge(target: &mut Value, patch: &Value, shape: TypeShape) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => merge_map(t, p, shape),
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

fn directive(item: &Value) -> Option<&str> {
    item.get("$patch").and_then(Value::as_str)
}

fn merge_map(target: &mut Map<String, Value>, patch: &Map<String, Value>, shape: TypeShape) {
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
    // `$setElementOrder` orders the merged list against the list as it was before.
    let before: Vec<(String, Vec<Value>)> = patch
        .keys()
        .filter_map(|k| k.strip_prefix("$setElementOrder/"))
        .filter_map(|field| match target.get(field) {
            Some(Value::Array(items)) => Some((field.to_owned(), items.clone())),
            _ => None,
        })
        .collect();
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
        let field = shape.field(key);
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(p) => match target.get_mut(key) {
                Some(Value::Object(t)) => merge_map(t, p, field.child()),
                _ => {
                    if directive(value) != Some("delete") {
                        target.insert(key.clone(), strip(value));
                    }
                }
            },
            Value::Array(items) => match target.get_mut(key) {
                Some(Value::Array(existing)) => merge_list(field, existing, items),
                _ => {
                    let items: Vec<Value> = items
                        .iter()
                        .filter(|i| {
                            directive(i) != Some("delete") && directive(i) != Some("replace")
                        })
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
    for (field, original) in before {
        let order = match patch.get(&format!("$setElementOrder/{field}")) {
            Some(Value::Array(order)) => order,
            _ => continue,
        };
        let merge_key = shape.field(&field).patch_merge_key();
        if let Some(Value::Array(list)) = target.get_mut(&field) {
            set_element_order(list, order, &original, merge_key);
        }
    }
}

/// The identity of a list item: its merge-key value, or the item itself for scalars.
fn identity<'a>(item: &'a Value, merge_key: Option<&str>) -> Option<&'a Value> {
    match merge_key {
        Some(key) => item.get(key),
        None => Some(item),
    }
}

/// Orders `list` as Kubernetes does for `$setElementOrder`: the items the order names come in
/// that order; the others keep their place relative to the list as it was before the patch: an
/// unnamed item goes before a named one unless both were in the list before and the named one
/// came first.
fn set_element_order(
    list: &mut Vec<Value>,
    order: &[Value],
    original: &[Value],
    merge_key: Option<&str>,
) {
    let wanted: Vec<&Value> = order
        .iter()
        .filter_map(|o| identity(o, merge_key))
        .collect();
    let server_index = |item: &Value| {
        let id = identity(item, merge_key)?;
        original
            .iter()
            .position(|o| identity(o, merge_key) == Some(id))
    };
    let (mut named, others): (Vec<Value>, Vec<Value>) = list
        .drain(..)
        .partition(|item| identity(item, merge_key).is_some_and(|id| wanted.contains(&id)));
    named.sort_by_key(|item| {
        identity(item, merge_key)
            .and_then(|id| wanted.iter().position(|w| *w == id))
            .unwrap_or(usize::MAX)
    });
    let mut others: Vec<(Option<usize>, Value)> =
        others.into_iter().map(|i| (server_index(&i), i)).collect();
    others.sort_by_key(|(index, _)| index.unwrap_or(usize::MAX));
    let mut named = named.into_iter().peekable();
    let mut others = others.into_iter().peekable();
    loop {
        let take_named = match (named.peek(), others.peek()) {
            (Some(n), Some((o, _))) => matches!((server_index(n), o), (Some(n), Some(o)) if n < *o),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_named {
            named.next()
        } else {
            others.next().map(|(_, item)| item)
        };
        if let Some(item) = next {
            list.push(item);
        }
    }
}

fn merge_list(field: FieldShape, existing: &mut Vec<Value>, patch: &[Value]) {
    if patch.iter().any(|i| directive(i) == Some("replace")) {
        *existing = patch
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip)
            .collect();
        return;
    }
    if !field.merges() {
        *existing = patch.iter().map(strip).collect();
        return;
    }
    let Some(key) = field.patch_merge_key() else {
        // A list of scalars with the merge strategy: a set.
        for item in patch {
            if !existing.contains(item) {
                existing.push(item.clone());
            }
        }
        return;
    };
    let child = field.child();
    for item in patch {
        let Some(value) = item.get(key) else {
            // Kubernetes refuses such a patch; an item without its key cannot be placed.
            continue;
        };
        let position = existing.iter().position(|e| e.get(key) == Some(value));
        match (position, directive(item) == Some("delete")) {
            (Some(i), true) => {
                existing.remove(i);
            }
            (Some(i), false) => strategic_merge(&mut existing[i], item, child),
            (None, true) => {}
            (None, false) => existing.push(strip(item)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> TypeShape {
        TypeShape::of_kind("v1", "Pod")
    }

    #[test]
    fn containers_merge_by_name() {
        let mut pod_value = json!({"spec": {"containers": [{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:1"}]}});
        strategic_merge(
            &mut pod_value,
            &json!({"spec": {"containers": [{"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}]}}),
            pod(),
        );
        assert_eq!(
            pod_value["spec"]["containers"],
            json!([{"name": "a", "image": "x:1"}, {"name": "b", "image": "y:2"}, {"name": "c", "image": "z"}])
        );
    }

    #[test]
    fn directives() {
        let mut obj = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}, "spec": {"containers": [{"name": "a", "args": ["1", "2"]}, {"name": "b"}]}});
        strategic_merge(
            &mut obj,
            &json!({
                "metadata": {"labels": {"a": null, "c": "3"}, "finalizers": ["y"]},
                "spec": {"containers": [{"name": "a", "$patch": "delete"}], "$setElementOrder/containers": [{"name": "b"}]}
            }),
            pod(),
        );
        assert_eq!(
            obj,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}, "finalizers": ["x", "y"]}, "spec": {"containers": [{"name": "b"}]}})
        );
        // Args are atomic: replaced, not merged.
        let mut obj = json!({"spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}});
        strategic_merge(
            &mut obj,
            &json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
            pod(),
        );
        assert_eq!(obj["spec"]["containers"][0]["args"], json!(["3"]));
        let deployment = TypeShape::of_kind("apps/v1", "Deployment");
        let mut obj = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        strategic_merge(
            &mut obj,
            &json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            deployment,
        );
        assert_eq!(obj, json!({"spec": {"strategy": {"type": "Recreate"}}}));
        let mut obj = json!({"metadata": {"finalizers": ["a", "b"]}});
        strategic_merge(
            &mut obj,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
            pod(),
        );
        assert_eq!(obj, json!({"metadata": {"finalizers": ["b"]}}));
    }

    #[test]
    fn set_element_order_reorders_and_keeps_server_only_items_in_place() {
        let mut obj =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "s"}, {"name": "b"}]}});
        strategic_merge(
            &mut obj,
            &json!({"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}],
                "containers": [{"name": "c", "image": "new"}]
            }}),
            pod(),
        );
        let names: Vec<&str> = obj["spec"]["containers"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        // b (server 2), a (server 0) and c (new) are ordered by the patch; s (server 1, not
        // named) goes before b, which came after it.
        assert_eq!(names, ["s", "b", "a", "c"]);
        let mut obj = json!({"metadata": {"finalizers": ["x", "y"]}});
        strategic_merge(
            &mut obj,
            &json!({"metadata": {"$setElementOrder/finalizers": ["y", "x"]}}),
            pod(),
        );
        assert_eq!(obj["metadata"]["finalizers"], json!(["y", "x"]));
    }

    #[test]
    fn ports_merge_by_the_key_of_their_type() {
        let service = TypeShape::of_kind("v1", "Service");
        let mut svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
        strategic_merge(
            &mut svc,
            &json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "name": "https"}]}}),
            service,
        );
        assert_eq!(
            svc["spec"]["ports"],
            json!([{"port": 80, "name": "http", "targetPort": 8080}, {"port": 443, "name": "https"}])
        );
        let mut p = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}]}]}});
        strategic_merge(
            &mut p,
            &json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}}),
            pod(),
        );
        assert_eq!(
            p["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "web", "hostPort": 8080}])
        );
    }

    #[test]
    fn unknown_kinds_replace_lists() {
        let mut cr = json!({"spec": {"containers": [{"name": "a"}]}});
        strategic_merge(
            &mut cr,
            &json!({"spec": {"containers": [{"name": "b"}]}}),
            TypeShape::unknown(),
        );
        assert_eq!(cr["spec"]["containers"], json!([{"name": "b"}]));
    }
}
