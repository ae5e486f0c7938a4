//! One desired object's manifest as the GitOps engine keeps it between commits: its JSON text,
//! one allocation, instead of a `serde_json::Value` tree.
//!
//! The engine holds every object of the applied commit (and the loader every file it has read)
//! for as long as the source exists. As trees, the 3,000 objects of `just bench gitops` were
//! tens of thousands of small allocations (a `BTreeMap` node is about 600 bytes however few
//! keys it holds) living among the rollouts' short-lived ones; as text they took 16 MiB off
//! the live heap, and loading a commit got faster. A tree is made again where one is needed
//! (the objects a commit applies, a drift comparison).
//!
//! The text is canonical: `serde_json` writes a map's keys in order, so two manifests are equal
//! exactly when their trees are, and equality is a comparison of bytes.

use std::sync::Arc;

use serde_json::Value;

/// Nesting that [`Manifest::value`] reads back; deeper manifests are refused when made.
/// `serde_json` reads 128 levels; the manifest loader stops at 100 by default.
pub const MAX_DEPTH: usize = 120;

/// Room for most manifests' text before the buffer they are written into grows.
const WRITE_BUFFER: usize = 2048;

/// Why a manifest cannot be kept.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Nested deeper than [`MAX_DEPTH`].
    #[error("the manifest nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// `serde_json` could not write it (it writes any tree; the error is its signature's).
    #[error("the manifest could not be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// What it wrote was not UTF-8 (it always is).
    #[error("the manifest's JSON was not UTF-8: {0}")]
    Utf8(#[from] std::str::Utf8Error),
}

/// A manifest as compact, canonical JSON text. Cloning shares the text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Manifest {
    text: Arc<str>,
}

impl Manifest {
    /// Keeps `value` as text; refuses one that could not be read back.
    pub fn new(value: &Value) -> Result<Manifest, ManifestError> {
        if depth(value) > MAX_DEPTH {
            return Err(ManifestError::TooDeep);
        }
        // Written into a buffer that seldom grows, then copied once into its exact size.
        let mut buffer = Vec::with_capacity(WRITE_BUFFER);
        serde_json::to_writer(&mut buffer, value)?;
        let text = std::str::from_utf8(&buffer)?;
        Ok(Manifest {
            text: Arc::from(text),
        })
    }

    /// The manifest as a tree.
    pub fn value(&self) -> Value {
        // The text was written from a tree no deeper than serde_json reads, so it reads back;
        // were it ever not to, the object would be applied as nothing and the apiserver would
        // refuse the commit with it, which is logged here too.
        serde_json::from_str(&self.text).unwrap_or_else(|error| {
            tracing::error!(%error, "a kept manifest did not read back");
            Value::Null
        })
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::fmt::Debug for Manifest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// How deeply `value` nests (a scalar is 1).
fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_back_and_compares_as_the_tree_does() {
        let a = json!({"kind": "ConfigMap", "data": {"b": "2", "a": "1"}, "n": [1, 2.5, null]});
        let m = Manifest::new(&a).expect("kept");
        assert_eq!(m.value(), a);
        // Keys written in order: the same tree built in another order is the same text.
        let mut b = serde_json::Map::new();
        b.insert("n".into(), json!([1, 2.5, null]));
        b.insert("data".into(), json!({"a": "1", "b": "2"}));
        b.insert("kind".into(), json!("ConfigMap"));
        assert_eq!(Manifest::new(&Value::Object(b)).expect("kept"), m);
        let c = json!({"kind": "ConfigMap", "data": {"b": "2", "a": "1"}, "n": [1, 2.5]});
        assert_ne!(Manifest::new(&c).expect("kept"), m);
        // An integer and a float are different values, and different text.
        assert_ne!(
            Manifest::new(&json!({"n": 1})).expect("kept"),
            Manifest::new(&json!({"n": 1.0})).expect("kept")
        );
    }

    #[test]
    fn a_manifest_too_deep_to_read_back_is_refused() {
        let mut v = json!("leaf");
        for _ in 0..MAX_DEPTH {
            v = json!([v]);
        }
        assert!(matches!(Manifest::new(&v), Err(ManifestError::TooDeep)));
        let mut ok = json!("leaf");
        for _ in 1..MAX_DEPTH {
            ok = json!({"a": ok});
        }
        assert_eq!(Manifest::new(&ok).expect("kept").value(), ok);
    }
}
