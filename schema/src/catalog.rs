//! Where the validator gets a kind's schema: extra directories given with `--schema-location`
//! (for custom resources, or to override a built-in kind), then the built-in schemas generated
//! from the types. Each schema is compiled once, on first use, and shared by every worker.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde_json::Value;

use crate::generate::{Flavour, kind_schema};
use crate::kinds::{self, schema_file_name, split_api_version};

/// A compiled schema and where it came from.
#[derive(Debug)]
pub struct CompiledSchema {
    /// The compiled validator.
    pub validator: jsonschema::Validator,
    /// `built-in` or the file it was read from.
    pub origin: String,
}

/// Why a schema could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    /// The schema file could not be read.
    #[error("cannot read schema {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        message: String,
    },
    /// The schema file is not JSON.
    #[error("schema {path} is not valid JSON: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        message: String,
    },
    /// The schema is not a valid JSON Schema.
    #[error("schema {origin} does not compile: {message}")]
    Compile {
        /// Where the schema came from.
        origin: String,
        /// The compile error.
        message: String,
    },
}

type Entry = Result<Option<Arc<CompiledSchema>>, CatalogError>;

/// The schemas the validator knows, compiled lazily.
#[derive(Debug)]
pub struct SchemaCatalog {
    flavour: Flavour,
    locations: Vec<PathBuf>,
    cache: RwLock<HashMap<(String, String), Entry>>,
}

impl SchemaCatalog {
    /// A catalog of the built-in schemas in `flavour`, after the extra `locations`.
    pub fn new(flavour: Flavour, locations: Vec<PathBuf>) -> Self {
        SchemaCatalog {
            flavour,
            locations,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// The schema for `apiVersion` + `kind`; `Ok(None)` when there is none.
    pub fn get(&self, api_version: &str, kind: &str) -> Entry {
        let key = (api_version.to_owned(), kind.to_owned());
        if let Ok(cache) = self.cache.read()
            && let Some(entry) = cache.get(&key)
        {
            return entry.clone();
        }
        // Compile outside the lock; two workers may race to compile the same schema once each.
        let entry = self.load(api_version, kind);
        if let Ok(mut cache) = self.cache.write() {
            cache.entry(key).or_insert_with(|| entry.clone());
        }
        entry
    }

    fn load(&self, api_version: &str, kind: &str) -> Entry {
        let (group, version) = split_api_version(api_version);
        for dir in &self.locations {
            for candidate in candidate_files(dir, group, version, kind) {
                if !candidate.is_file() {
                    continue;
                }
                let text = std::fs::read_to_string(&candidate).map_err(|e| CatalogError::Read {
                    path: candidate.clone(),
                    message: e.to_string(),
                })?;
                let schema: Value =
                    serde_json::from_str(&text).map_err(|e| CatalogError::Parse {
                        path: candidate.clone(),
                        message: e.to_string(),
                    })?;
                return compile(&schema, candidate.display().to_string()).map(Some);
            }
        }
        match kinds::find(api_version, kind) {
            Some(info) => {
                let schema = kind_schema(info, self.flavour);
                compile(&schema, "built-in".into()).map(Some)
            }
            None => Ok(None),
        }
    }
}

fn compile(schema: &Value, origin: String) -> Result<Arc<CompiledSchema>, CatalogError> {
    let validator = jsonschema::validator_for(schema).map_err(|e| CatalogError::Compile {
        origin: origin.clone(),
        message: e.to_string(),
    })?;
    Ok(Arc::new(CompiledSchema { validator, origin }))
}

/// The file names a schema for a kind may have in an extra location: kubeconform's
/// `{kind}-{group}-{version}.json` (first group segment, or the whole group), and the
/// CRDs-catalog layout `{group}/{kind}_{version}.json`.
fn candidate_files(dir: &Path, group: &str, version: &str, kind: &str) -> Vec<PathBuf> {
    let lower = kind.to_ascii_lowercase();
    let mut files = vec![dir.join(schema_file_name(group, version, kind))];
    if group.contains('.') {
        files.push(dir.join(format!("{lower}-{group}-{version}.json")));
    }
    if !group.is_empty() {
        files.push(dir.join(group).join(format!("{lower}_{version}.json")));
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_and_extra_locations() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("widget-example-v1.json"),
            r#"{"type": "object", "required": ["spec"]}"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("broken-example-v1.json"), "{").expect("write");
        let catalog = SchemaCatalog::new(Flavour::Normal, vec![dir.path().to_path_buf()]);
        let deploy = catalog
            .get("apps/v1", "Deployment")
            .expect("ok")
            .expect("built in");
        assert_eq!(deploy.origin, "built-in");
        let widget = catalog
            .get("example.com/v1", "Widget")
            .expect("ok")
            .expect("from the extra location");
        assert!(
            !widget
                .validator
                .is_valid(&serde_json::json!({"kind": "Widget"}))
        );
        assert!(
            catalog
                .get("example.com/v1", "Gadget")
                .expect("ok")
                .is_none()
        );
        assert!(matches!(
            catalog.get("example.com/v1", "Broken"),
            Err(CatalogError::Parse { .. })
        ));
    }
}
