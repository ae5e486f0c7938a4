//! Drift: whether a live object still says what the applied commit says. Every field the
//! manifest sets must have the same value live; fields the manifest does not set (defaults,
//! status, fields other managers own) are not drift.

use serde_json::Value;

/// JSON pointers of the fields of `desired` whose live value differs.
pub fn differences(desired: &Value, live: &Value) -> Vec<String> {
    let mut out = Vec::new();
    walk(desired, live, String::new(), &mut out);
    out
}

/// The live object cut down to the fields `desired` sets (list items kept whole), so that a
/// diff of `desired` against it shows only what the manifest disagrees with.
pub fn project(desired: &Value, live: &Value) -> Value {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => Value::Object(
            want.iter()
                .filter_map(|(k, w)| have.get(k).map(|h| (k.clone(), project(w, h))))
                .collect(),
        ),
        (Value::Array(want), Value::Array(have)) => Value::Array(
            have.iter()
                .enumerate()
                .map(|(i, h)| want.get(i).map_or_else(|| h.clone(), |w| project(w, h)))
                .collect(),
        ),
        (_, h) => h.clone(),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn walk(desired: &Value, live: &Value, pointer: String, out: &mut Vec<String>) {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, value) in want {
                if pointer == "/metadata" && matches!(key.as_str(), "annotations") {
                    // ferry's own commit annotation is bookkeeping; other annotations count.
                    if let (Some(w), Some(h)) = (value.as_object(), have.get(key)) {
                        for (k, v) in w {
                            if h.get(k) != Some(v) {
                                out.push(format!("{pointer}/{key}/{}", escape(k)));
                            }
                        }
                        continue;
                    }
                }
                match have.get(key) {
                    Some(h) => walk(value, h, format!("{pointer}/{}", escape(key)), out),
                    None if value.is_null() => {}
                    None => out.push(format!("{pointer}/{}", escape(key))),
                }
            }
        }
        (Value::Array(want), Value::Array(have)) => {
            if want.len() != have.len() {
                out.push(pointer);
                return;
            }
            for (i, (w, h)) in want.iter().zip(have).enumerate() {
                walk(w, h, format!("{pointer}/{i}"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => {}
        (a, b) if a == b => {}
        _ => out.push(pointer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_what_the_manifest_sets_counts() {
        let want = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}});
        let mut live = want.clone();
        live["status"] = json!({"replicas": 2});
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
        live["metadata"]["uid"] = json!("u");
        assert!(differences(&want, &live).is_empty());
        live["spec"]["replicas"] = json!(5);
        live["metadata"]["labels"]["x"] = json!("2");
        assert_eq!(
            differences(&want, &live),
            vec!["/metadata/labels/x", "/spec/replicas"]
        );
    }
}
