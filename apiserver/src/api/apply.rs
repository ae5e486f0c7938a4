//! Field ownership and server-side apply (`application/apply-patch+yaml`).
//!
//! Every write records which manager set which fields, in `metadata.managedFields`, in
//! Kubernetes' `FieldsV1` shape (`{"f:spec": {"f:replicas": {}}}`, list items by merge key as
//! `k:{"name":"web"}`, set members as `v:"x"`, and `.` for an item itself). An update takes
//! the fields it changed from whoever owned them. An apply sets the fields of its configuration
//! and owns them; a field another manager owns with a different value is a conflict (409, naming
//! the fields and their owner) unless the apply is forced, which takes the field over. Fields
//! the applier owned before and no longer sets are removed, unless someone else owns them.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use ferry_schema::merge::{FieldShape, ListType, TypeShape};

use super::admission::now;
use super::status::ApiError;

/// A field path: `["f:spec", "f:containers", "k:{\"name\":\"web\"}", "f:image"]`.
type FieldPath = Vec<String>;

/// Metadata fields that are identity or server-owned, never managed.
const UNMANAGED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The `k:` key of a list item: the values of its list-map keys. A missing `protocol` is the
/// `TCP` that defaulting gives every port, so that an apply configuration that leaves it out
/// names the same item as the stored object.
fn item_key(keys: &[String], item: &Value) -> Option<Value> {
    if keys.is_empty() {
        return None;
    }
    let mut key = Map::new();
    for k in keys {
        match item.get(k) {
            Some(v) => {
                key.insert(k.clone(), v.clone());
            }
            None if k == "protocol" => {
                key.insert(k.clone(), json!("TCP"));
            }
            None => {}
        }
    }
    (!key.is_empty()).then_some(Value::Object(key))
}

/// Whether a list item is the one a `k:` key names (a missing `protocol` being `TCP`).
fn item_matches(item: &Value, key: &Map<String, Value>) -> bool {
    key.iter().all(|(k, kv)| match item.get(k) {
        Some(v) => v == kv,
        None => k == "protocol" && kv == "TCP",
    })
}

/// The leaf paths an object (or an apply configuration) sets, walked by its kind's field types.
fn paths_of(value: &Value) -> BTreeSet<FieldPath> {
    paths_differing(value, None)
}

/// The field paths of `value` under the fields (top-level, or in metadata) whose value differs
/// from the same field of `other`: a field equal in both has only paths whose values are equal,
/// so an update's changed paths are found without walking what it left alone (a status write
/// leaves every managed field alone).
fn paths_differing(value: &Value, other: Option<&Value>) -> BTreeSet<FieldPath> {
    let mut out = BTreeSet::new();
    let Value::Object(map) = value else {
        return out;
    };
    let shape = TypeShape::of_kind(
        value["apiVersion"].as_str().unwrap_or_default(),
        value["kind"].as_str().unwrap_or_default(),
    );
    for (k, v) in map {
        if k == "apiVersion" || k == "kind" || k == "status" {
            continue;
        }
        if k == "metadata" {
            if let Value::Object(meta) = v {
                let meta_shape = shape.field("metadata").child();
                for (mk, mv) in meta {
                    let same = other.is_some_and(|o| o["metadata"].get(mk) == Some(mv));
                    if !same && !UNMANAGED_META.contains(&mk.as_str()) {
                        walk(
                            mv,
                            mk,
                            meta_shape.field(mk),
                            vec!["f:metadata".into()],
                            &mut out,
                        );
                    }
                }
            }
            continue;
        }
        if other.is_some_and(|o| o.get(k) == Some(v)) {
            continue;
        }
        walk(v, k, shape.field(k), Vec::new(), &mut out);
    }
    out
}

fn walk(
    value: &Value,
    field: &str,
    shape: FieldShape,
    prefix: FieldPath,
    out: &mut BTreeSet<FieldPath>,
) {
    let mut path = prefix;
    path.push(format!("f:{field}"));
    let keys = shape.list_map_keys();
    match value {
        Value::Object(map) if !map.is_empty() => {
            let child = shape.child();
            for (k, v) in map {
                walk(v, k, child.field(k), path.clone(), out);
            }
        }
        Value::Array(items)
            if !items.is_empty() && items.iter().all(|i| item_key(keys, i).is_some()) =>
        {
            let child = shape.child();
            for item in items {
                let Some(key) = item_key(keys, item) else {
                    continue;
                };
                let mut item_path = path.clone();
                item_path.push(format!("k:{key}"));
                let mut dot = item_path.clone();
                dot.push(".".into());
                out.insert(dot);
                if let Value::Object(fields) = item {
                    for (k, v) in fields {
                        walk(v, k, child.field(k), item_path.clone(), out);
                    }
                }
            }
        }
        Value::Array(items) if shape.list_type() == ListType::Set => {
            for item in items {
                let mut p = path.clone();
                p.push(format!("v:{item}"));
                out.insert(p);
            }
        }
        _ => {
            out.insert(path);
        }
    }
}

/// `FieldsV1` of a set of paths.
fn to_fields(paths: &BTreeSet<FieldPath>) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for segment in path {
            let entry = node.entry(segment.clone()).or_insert_with(|| json!({}));
            node = match entry.as_object_mut() {
                Some(m) => m,
                None => break,
            };
        }
    }
    Value::Object(root)
}

/// The paths of a `FieldsV1`.
fn from_fields(fields: &Value) -> BTreeSet<FieldPath> {
    fn go(node: &Map<String, Value>, prefix: &mut FieldPath, out: &mut BTreeSet<FieldPath>) {
        for (k, v) in node {
            prefix.push(k.clone());
            match v.as_object() {
                Some(child) if !child.is_empty() => go(child, prefix, out),
                _ => {
                    out.insert(prefix.clone());
                }
            }
            prefix.pop();
        }
    }
    let mut out = BTreeSet::new();
    if let Some(map) = fields.as_object() {
        go(map, &mut Vec::new(), &mut out);
    }
    out
}

/// The value at a path (`None` when absent); `.` and set members yield `true` when present.
fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<std::borrow::Cow<'a, Value>> {
    let mut v = object;
    for segment in path {
        if let Some(name) = segment.strip_prefix("f:") {
            v = v.get(name)?;
        } else if let Some(key) = segment.strip_prefix("k:") {
            let key: Value = serde_json::from_str(key).ok()?;
            let key = key.as_object()?;
            v = v.as_array()?.iter().find(|item| item_matches(item, key))?;
        } else if let Some(member) = segment.strip_prefix("v:") {
            let member: Value = serde_json::from_str(member).ok()?;
            return v
                .as_array()?
                .contains(&member)
                .then_some(std::borrow::Cow::Owned(Value::Bool(true)));
        } else if segment == "." {
            return Some(std::borrow::Cow::Owned(Value::Bool(true)));
        }
    }
    Some(std::borrow::Cow::Borrowed(v))
}

/// Removes the field at a path, if present.
fn remove_at(object: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let (target_segment, container_path) = if last == "." {
        match parents.split_last() {
            Some((item, rest)) => (item.clone(), rest),
            None => return,
        }
    } else {
        (last.clone(), parents)
    };
    let mut v = object;
    for segment in container_path {
        let next = if let Some(name) = segment.strip_prefix("f:") {
            v.get_mut(name)
        } else if let Some(key) = segment.strip_prefix("k:") {
            let Ok(Value::Object(key)) = serde_json::from_str::<Value>(key) else {
                return;
            };
            v.as_array_mut()
                .and_then(|items| items.iter_mut().find(|item| item_matches(item, &key)))
        } else {
            None
        };
        match next {
            Some(n) => v = n,
            None => return,
        }
    }
    if let Some(name) = target_segment.strip_prefix("f:") {
        if let Some(map) = v.as_object_mut() {
            map.remove(name);
        }
    } else if let Some(key) = target_segment.strip_prefix("k:") {
        if let (Ok(Value::Object(key)), Some(items)) =
            (serde_json::from_str::<Value>(key), v.as_array_mut())
        {
            items.retain(|item| !item_matches(item, &key));
        }
    } else if let Some(member) = target_segment.strip_prefix("v:")
        && let (Ok(member), Some(items)) = (serde_json::from_str::<Value>(member), v.as_array_mut())
    {
        items.retain(|i| *i != member);
    }
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: String,
    paths: BTreeSet<FieldPath>,
}

fn entries(object: &Value) -> Vec<Entry> {
    object["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| Entry {
            manager: e["manager"].as_str().unwrap_or_default().to_owned(),
            operation: e["operation"].as_str().unwrap_or("Update").to_owned(),
            api_version: e["apiVersion"].as_str().unwrap_or_default().to_owned(),
            time: e["time"].as_str().unwrap_or_default().to_owned(),
            paths: from_fields(&e["fieldsV1"]),
        })
        .collect()
}

fn store(object: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .into_iter()
        .filter(|e| !e.paths.is_empty())
        .map(|e| json!({"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version, "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields(&e.paths)}))
        .collect();
    if let Some(meta) = object["metadata"].as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Records an ordinary write (create, update, patch) by `manager`: it owns the fields it
/// changed, taken from whoever owned them.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str) {
    let after = paths_differing(new, old);
    let changed: BTreeSet<FieldPath> = match old {
        None => after,
        Some(old) => {
            let before = paths_differing(old, Some(new));
            after
                .union(&before)
                .filter(|p| value_at(old, p) != value_at(new, p))
                .cloned()
                .collect()
        }
    };
    if changed.is_empty()
        && old.is_some_and(|o| o["metadata"]["managedFields"] == new["metadata"]["managedFields"])
    {
        // Nothing managed changed and the entries are as stored (a status write): they stay.
        return;
    }
    let mut list = old.map(entries).unwrap_or_default();
    if changed.is_empty() {
        store(new, list);
        return;
    }
    for e in &mut list {
        e.paths.retain(|p| !changed.contains(p));
    }
    let api_version = new["apiVersion"].as_str().unwrap_or_default().to_owned();
    match list
        .iter_mut()
        .find(|e| e.manager == manager && e.operation == "Update")
    {
        Some(mine) => {
            mine.paths
                .extend(changed.into_iter().filter(|p| value_at(new, p).is_some()));
            mine.time = now();
        }
        None => list.push(Entry {
            manager: manager.to_owned(),
            operation: "Update".into(),
            api_version,
            time: now(),
            paths: changed
                .into_iter()
                .filter(|p| value_at(new, p).is_some())
                .collect(),
        }),
    }
    store(new, list);
}

fn dotted(path: &FieldPath) -> String {
    let mut out = String::new();
    for segment in path {
        if let Some(f) = segment.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = segment.strip_prefix("k:") {
            out.push_str(&format!("[{k}]"));
        } else if let Some(v) = segment.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

/// Applies `config` by `manager` to `current` (`None`: the object does not exist yet).
/// Returns the new object, or a 409 naming the conflicting fields.
pub fn apply(
    current: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
    kind: (&str, &str, &str),
) -> Result<Value, ApiError> {
    let (group, resource, name) = kind;
    let applied = paths_of(config);
    let base = current.cloned().unwrap_or_else(|| json!({}));
    let mut list = current.map(entries).unwrap_or_default();
    let mut conflicts: Vec<(String, FieldPath)> = Vec::new();
    for e in &list {
        if e.manager == manager && e.operation == "Apply" {
            continue;
        }
        for p in e.paths.intersection(&applied) {
            if p.last().is_some_and(|s| s == ".") {
                continue;
            }
            if value_at(&base, p) != value_at(config, p) {
                conflicts.push((e.manager.clone(), p.clone()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        let listed: Vec<String> = conflicts
            .iter()
            .map(|(m, p)| format!("conflict with \"{m}\": {}", dotted(p)))
            .collect();
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(m, p)| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{m}\""), "field": dotted(p)}))
            .collect();
        let mut error = ApiError::conflict(group, resource, name);
        error.message = format!(
            "Apply failed with {} conflict{}: {}",
            conflicts.len(),
            if conflicts.len() == 1 { "" } else { "s" },
            listed.join(", ")
        );
        error.details =
            Some(json!({"name": name, "group": group, "kind": resource, "causes": causes}));
        return Err(error);
    }
    // Forced: the conflicting fields change hands.
    for e in &mut list {
        if !(e.manager == manager && e.operation == "Apply") {
            e.paths.retain(|p| !applied.contains(p));
        }
    }
    let mut object = base;
    // Fields this manager applied before and no longer sets go, unless someone else owns them.
    let previous: BTreeSet<FieldPath> = list
        .iter()
        .filter(|e| e.manager == manager && e.operation == "Apply")
        .flat_map(|e| e.paths.iter().cloned())
        .collect();
    let others: BTreeSet<FieldPath> = list
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
        .flat_map(|e| e.paths.iter().cloned())
        .collect();
    for p in previous.difference(&applied) {
        if !others.contains(p) {
            remove_at(&mut object, p);
        }
    }
    let shape = TypeShape::of_kind(
        config["apiVersion"].as_str().unwrap_or_default(),
        config["kind"].as_str().unwrap_or_default(),
    );
    ferry_schema::merge::strategic_merge(&mut object, config, shape);
    list.retain(|e| !(e.manager == manager && e.operation == "Apply"));
    list.push(Entry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version: config["apiVersion"].as_str().unwrap_or_default().to_owned(),
        time: now(),
        paths: applied,
    });
    store(&mut object, list);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
    }

    #[test]
    fn fields_v1_round_trip() {
        let paths = paths_of(&deploy(2, "nginx"));
        assert!(paths.contains(&vec!["f:spec".to_string(), "f:replicas".to_string()]));
        assert!(paths.contains(&vec![
            "f:spec".into(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"web\"}".into(),
            "f:image".into()
        ]));
        assert!(paths.contains(&vec![
            "f:metadata".to_string(),
            "f:labels".to_string(),
            "f:app".to_string()
        ]));
        assert_eq!(from_fields(&to_fields(&paths)), paths);
    }

    #[test]
    fn apply_update_conflict_and_force() {
        let created = apply(
            None,
            &deploy(2, "nginx"),
            "ci",
            false,
            ("apps", "deployments", "web"),
        )
        .expect("first apply");
        assert_eq!(created["metadata"]["managedFields"][0]["manager"], "ci");
        // Someone scales: they own .spec.replicas now.
        let mut scaled = created.clone();
        scaled["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut scaled, "kubectl-scale");
        // Re-applying a different replica count conflicts, naming the owner and the field.
        let err = apply(
            Some(&scaled),
            &deploy(2, "nginx:2"),
            "ci",
            false,
            ("apps", "deployments", "web"),
        )
        .expect_err("conflict");
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("conflict with \"kubectl-scale\": .spec.replicas"),
            "{}",
            err.message
        );
        // Same value: no conflict.
        apply(
            Some(&scaled),
            &deploy(5, "nginx:2"),
            "ci",
            false,
            ("apps", "deployments", "web"),
        )
        .expect("agreeing apply");
        // Forced: the field changes hands.
        let forced = apply(
            Some(&scaled),
            &deploy(3, "nginx:2"),
            "ci",
            true,
            ("apps", "deployments", "web"),
        )
        .expect("forced");
        assert_eq!(forced["spec"]["replicas"], 3);
        let owners: Vec<&str> = forced["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .iter()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(owners, vec!["ci"], "kubectl-scale owned nothing else");
    }

    #[test]
    fn dropped_fields_are_removed() {
        let first = apply(
            None,
            &deploy(2, "nginx"),
            "ci",
            false,
            ("apps", "deployments", "web"),
        )
        .expect("apply");
        let mut config = deploy(2, "nginx");
        config["metadata"]["labels"] = json!({});
        config["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("labels");
        let second = apply(
            Some(&first),
            &config,
            "ci",
            false,
            ("apps", "deployments", "web"),
        )
        .expect("apply");
        assert!(
            second["metadata"]["labels"].get("app").is_none(),
            "{second}"
        );
    }

    #[test]
    fn an_update_without_managed_fields_keeps_the_stored_entries() {
        // The controllers' caches drop managedFields; a write from such a copy must not.
        let mut created = deploy(2, "nginx");
        record_update(None, &mut created, "ci");
        let without_entries = |object: &Value| {
            let mut copy = object.clone();
            if let Some(meta) = copy["metadata"].as_object_mut() {
                meta.remove("managedFields");
            }
            copy
        };
        let mut from_cache = without_entries(&created);
        record_update(Some(&created), &mut from_cache, "controller");
        assert_eq!(
            from_cache["metadata"]["managedFields"],
            created["metadata"]["managedFields"]
        );
        // Changing a field from such a copy moves only that field to the writer.
        let mut scaled = without_entries(&created);
        scaled["spec"]["replicas"] = json!(3);
        record_update(Some(&created), &mut scaled, "controller");
        let managers: Vec<&str> = scaled["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["manager"].as_str())
            .collect();
        assert_eq!(managers, ["ci", "controller"]);
    }

    #[test]
    fn an_update_owns_only_what_it_changed() {
        let mut created = deploy(2, "nginx");
        record_update(None, &mut created, "ci");
        let owned = |o: &Value, manager: &str| -> BTreeSet<FieldPath> {
            entries(o)
                .into_iter()
                .filter(|e| e.manager == manager)
                .flat_map(|e| e.paths)
                .collect()
        };
        let image = vec![
            "f:spec".to_string(),
            "f:template".into(),
            "f:spec".into(),
            "f:containers".into(),
            "k:{\"name\":\"web\"}".into(),
            "f:image".into(),
        ];
        assert!(owned(&created, "ci").contains(&image));
        // A status write changes no managed field: the entries stay exactly as they were.
        let mut reported = created.clone();
        reported["status"] = json!({"replicas": 2});
        record_update(Some(&created), &mut reported, "controller");
        assert_eq!(
            reported["metadata"]["managedFields"],
            created["metadata"]["managedFields"]
        );
        // A new image: the image path alone moves to the new writer; a label added in the same
        // write is the writer's too, and the untouched replicas stay with the first.
        let mut rolled = reported.clone();
        rolled["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        rolled["metadata"]["labels"]["tier"] = json!("front");
        record_update(Some(&reported), &mut rolled, "kubectl-set");
        let mine = owned(&rolled, "kubectl-set");
        let label = vec!["f:metadata".to_string(), "f:labels".into(), "f:tier".into()];
        assert_eq!(mine, BTreeSet::from([image.clone(), label]));
        let first = owned(&rolled, "ci");
        assert!(!first.contains(&image));
        assert!(first.contains(&vec!["f:spec".to_string(), "f:replicas".into()]));
    }
}
