//! Rules on `metadata`: the name (per kind), the namespace, labels and annotations.

use serde_json::Value;

use super::Findings;
use super::names::{dns1123_label, label_value, qualified_name};
use crate::kinds::KindInfo;
use crate::pointer::JsonPointer;

/// The apiserver's limit on the total size of an object's annotations.
pub const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

/// Checks an object's metadata.
pub fn check(kind: &KindInfo, object: &Value, out: &mut Findings) {
    let meta = &object["metadata"];
    let path = JsonPointer::root().join("metadata");
    match meta["name"].as_str() {
        Some(name) => {
            if let Some(problem) = kind.name_rule.check(name) {
                out.add(
                    path.join("name"),
                    format!("invalid {} name: {problem}", kind.kind),
                );
            }
        }
        None if meta["generateName"].is_string() => {}
        None => out.add(
            path.join("name"),
            "metadata.name is required (or metadata.generateName)",
        ),
    }
    if let Some(namespace) = meta["namespace"].as_str() {
        if !kind.namespaced {
            out.add_key(
                path.join("namespace"),
                format!(
                    "{} is cluster-scoped: metadata.namespace is not allowed",
                    kind.kind
                ),
            );
        } else if let Some(problem) = dns1123_label(namespace) {
            out.add(
                path.join("namespace"),
                format!("invalid namespace: {problem}"),
            );
        }
    }
    labels(&meta["labels"], &path.join("labels"), out);
    if let Some(annotations) = meta["annotations"].as_object() {
        let mut total = 0;
        for (key, value) in annotations {
            if let Some(problem) = qualified_name(key) {
                out.add_key(
                    path.join("annotations").join(key),
                    format!("invalid annotation key: {problem}"),
                );
            }
            total += key.len() + value.as_str().map_or(0, str::len);
        }
        if total > MAX_ANNOTATIONS_BYTES {
            out.add(
                path.join("annotations"),
                format!(
                    "annotations total {total} bytes, over the limit of {MAX_ANNOTATIONS_BYTES}"
                ),
            );
        }
    }
}

/// Checks a map of labels: keys are qualified names, values are label values.
pub fn labels(labels: &Value, path: &JsonPointer, out: &mut Findings) {
    let Some(labels) = labels.as_object() else {
        return;
    };
    for (key, value) in labels {
        if let Some(problem) = qualified_name(key) {
            out.add_key(path.join(key), format!("invalid label key: {problem}"));
        }
        if let Some(problem) = value.as_str().and_then(label_value) {
            out.add(path.join(key), problem);
        }
    }
}
