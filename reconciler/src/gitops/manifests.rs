//! From a [`Snapshot`]'s files to the objects a commit wants, or the reasons it is refused:
//! every file is checked with the `ferry validate` engine (schema, names, semantic rules,
//! strict decoding), objects defined twice are refused, namespaced objects without a namespace
//! go to `default` (as `kubectl apply` does), and every object is labelled with its source.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_schema::ferry::RevisionFinding;
use ferry_schema::kinds;
use ferry_schema::loader::load_documents;
use ferry_schema::structural::served_versions;
use ferry_schema::validate::Validator;
use serde_json::{Value, json};

use super::checkout::Snapshot;
use super::manifest::Manifest;

/// The label every object a source applied carries.
pub const SOURCE_LABEL: &str = "ferry.dev/source";
/// The annotation naming the commit that last changed an object.
pub const COMMIT_ANNOTATION: &str = "ferry.dev/commit";

/// Identifies an object: `(apiVersion, kind, namespace, name)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    /// `apiVersion`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace ("" for cluster-scoped kinds).
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl ObjectId {
    /// `Kind/namespace/name` or `Kind/name`, as `--object` takes it.
    pub fn slashed(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// An object a commit wants, and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredObject {
    /// Which object.
    pub id: ObjectId,
    /// File (relative to the source's path).
    pub file: String,
    /// Line its document starts at.
    pub line: usize,
    /// The manifest, labelled with the source (without the commit annotation).
    pub object: Manifest,
}

/// What a commit wants: its objects (Namespaces first, then in file order) or why not.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Desired {
    /// The objects.
    pub objects: Vec<DesiredObject>,
    /// Why the commit is refused (empty: it is not).
    pub findings: Vec<RevisionFinding>,
}

impl DesiredObject {
    /// A finding about this object at its file and line (`pointer` into the manifest, or "").
    fn finding(&self, pointer: &str, message: &str) -> RevisionFinding {
        finding(
            &self.file,
            self.line,
            0,
            Some(self.id.to_string()),
            pointer,
            message,
        )
    }
}

impl Desired {
    /// The objects by identity.
    pub fn by_id(&self) -> HashMap<&ObjectId, &DesiredObject> {
        self.objects.iter().map(|o| (&o.id, o)).collect()
    }
}

fn finding(
    file: &str,
    line: usize,
    column: usize,
    object: Option<String>,
    path: &str,
    message: &str,
) -> RevisionFinding {
    RevisionFinding {
        file: Some(file.to_owned()),
        line: (line > 0).then_some(line as u32),
        column: (column > 0).then_some(column as u32),
        object,
        path: (!path.is_empty()).then(|| path.to_owned()),
        message: message.to_owned(),
    }
}

/// Checks the custom resources of a commit against the CRDs of the same commit: scope,
/// unknown fields and the structural schema, as the apiserver will. Kinds the commit does not
/// define are left to the cluster: applying the commit refuses them when it does not serve them.
fn check_custom_resources(desired: &mut Desired) {
    let mut defined = Vec::new();
    for o in desired.objects.iter().filter(|o| {
        o.id.kind == "CustomResourceDefinition" && o.id.api_version == "apiextensions.k8s.io/v1"
    }) {
        match served_versions(&o.object.value()) {
            Ok(versions) => defined.extend(versions),
            Err(e) => desired.findings.push(o.finding("", &e.to_string())),
        }
    }
    for o in &mut desired.objects {
        if kinds::find(&o.id.api_version, &o.id.kind).is_some() {
            continue;
        }
        let Some(v) = defined
            .iter()
            .find(|v| v.api_version() == o.id.api_version && v.kind == o.id.kind)
        else {
            continue;
        };
        let mut checked = o.object.value();
        if !v.namespaced && !o.id.namespace.is_empty() {
            o.id.namespace.clear();
            if let Some(meta) = checked["metadata"].as_object_mut() {
                meta.remove("namespace");
            }
            match Manifest::new(&checked) {
                Ok(m) => o.object = m,
                // Cannot happen (one field less than a manifest that was kept); should it
                // ever, the commit is refused with the reason.
                Err(e) => desired.findings.push(o.finding("", &e.to_string())),
            }
        }
        let Some(schema) = &v.schema else { continue };
        for pointer in schema.prune(&mut checked) {
            let message = format!(
                "unknown field \"{}\"",
                pointer.trim_start_matches('/').replace('/', ".")
            );
            desired.findings.push(o.finding(&pointer, &message));
        }
        schema.default(&mut checked);
        for failure in schema.validate(&checked) {
            desired
                .findings
                .push(o.finding(&failure.pointer, &failure.message));
        }
    }
}

/// What one file's content yields: its objects (labelled, namespaced) with their lines, and
/// its findings. Depends only on the content, so it is cached by content id.
#[derive(Debug, Default)]
struct FileResult {
    objects: Vec<(ObjectId, usize, Manifest)>,
    findings: Vec<RevisionFinding>,
}

/// Loads snapshots for one source, remembering what each file content yielded so that a
/// commit changing a few files re-reads and re-validates only those.
pub struct Loader {
    validator: Arc<Validator>,
    source: String,
    cache: HashMap<String, Arc<FileResult>>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("source", &self.source)
            .field("cached", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl Loader {
    /// A loader for `source`, checking with `validator`.
    pub fn new(validator: Arc<Validator>, source: &str) -> Loader {
        Loader {
            validator,
            source: source.to_owned(),
            cache: HashMap::new(),
        }
    }

    /// The content ids the loader has seen (a snapshot may leave their bytes out).
    pub fn known(&self) -> HashSet<String> {
        self.cache.keys().cloned().collect()
    }

    /// Loads and checks a snapshot. Afterwards the cache holds this snapshot's contents and
    /// those it held before (so that going back and forth between two commits stays cheap);
    /// anything older is dropped.
    pub fn load(&mut self, snapshot: &Snapshot) -> Desired {
        let mut desired = Desired {
            findings: snapshot.refused.clone(),
            ..Desired::default()
        };
        let mut seen: HashMap<ObjectId, (String, usize)> = HashMap::new();
        let mut current: HashMap<String, Arc<FileResult>> = HashMap::new();
        for file in &snapshot.files {
            let result = match self.cache.get(&file.id) {
                Some(r) => r.clone(),
                None => Arc::new(self.read(&file.path, &file.bytes)),
            };
            for f in &result.findings {
                let mut f = f.clone();
                f.file = Some(file.path.clone());
                desired.findings.push(f);
            }
            for (id, line, object) in &result.objects {
                if let Some((first_file, first_line)) = seen.get(id) {
                    desired.findings.push(finding(
                        &file.path,
                        *line,
                        0,
                        Some(id.to_string()),
                        "/metadata/name",
                        &format!(
                            "{id} is defined more than once: first in {first_file} (line {first_line})"
                        ),
                    ));
                    continue;
                }
                seen.insert(id.clone(), (file.path.clone(), *line));
                desired.objects.push(DesiredObject {
                    id: id.clone(),
                    file: file.path.clone(),
                    line: *line,
                    object: object.clone(),
                });
            }
            current.insert(file.id.clone(), result);
        }
        let previous = std::mem::take(&mut self.cache);
        self.cache = current;
        if self.cache.len() < 2 * snapshot.files.len() + 64 {
            for (id, r) in previous {
                self.cache.entry(id).or_insert(r);
            }
        }
        check_custom_resources(&mut desired);
        // Namespaces first (objects may live in a namespace the same commit creates), then
        // CRDs (their kinds may follow).
        desired.objects.sort_by_key(|o| {
            if o.id.kind == "Namespace" && o.id.api_version == "v1" {
                0
            } else if o.id.kind == "CustomResourceDefinition" {
                1
            } else {
                2
            }
        });
        desired
    }

    /// Validates and parses one file's bytes.
    fn read(&self, path: &str, bytes: &[u8]) -> FileResult {
        let mut result = FileResult::default();
        for report in self.validator.validate_bytes(path, bytes) {
            // A kind no built-in schema knows may be defined by a CRD of the same commit
            // (checked in `load`) or of the cluster (checked when the commit is applied).
            if !report.status.is_failure() || report.missing_schema() {
                continue;
            }
            let namespaced =
                kinds::find(&report.api_version, &report.kind).is_some_and(|k| k.namespaced);
            let namespace = match report.namespace.as_str() {
                "" if namespaced => "default".to_owned(),
                _ if !namespaced => String::new(),
                ns => ns.to_owned(),
            };
            let object = (!report.kind.is_empty()).then(|| {
                ObjectId {
                    api_version: report.api_version.clone(),
                    kind: report.kind.clone(),
                    namespace,
                    name: report.name.clone(),
                }
                .to_string()
            });
            for e in &report.errors {
                result.findings.push(finding(
                    path,
                    e.line,
                    e.column,
                    object.clone(),
                    &e.path,
                    &e.message,
                ));
            }
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            return result;
        };
        for doc in load_documents(text, &self.validator.options().limits) {
            let Ok(value) = doc.value else { continue };
            let items = if value["kind"].as_str().is_some_and(|k| k.ends_with("List"))
                && value["items"].is_array()
            {
                value["items"].as_array().cloned().unwrap_or_default()
            } else {
                vec![value]
            };
            for object in items {
                let Some((id, object)) = self.prepare(object) else {
                    continue;
                };
                match Manifest::new(&object) {
                    Ok(manifest) => result.objects.push((id, doc.start.line, manifest)),
                    Err(e) => result.findings.push(finding(
                        path,
                        doc.start.line,
                        0,
                        Some(id.to_string()),
                        "",
                        &e.to_string(),
                    )),
                }
            }
        }
        result
    }

    /// Defaults the namespace (`default` for namespaced kinds, none for cluster-scoped ones)
    /// and labels the object with the source.
    fn prepare(&self, mut object: Value) -> Option<(ObjectId, Value)> {
        let api_version = object["apiVersion"].as_str()?.to_owned();
        let kind = object["kind"].as_str()?.to_owned();
        // A kind no built-in schema knows is a custom one: namespaced unless its CRD says
        // otherwise (`load` checks it against the commit's CRDs).
        let namespaced = kinds::find(&api_version, &kind).is_none_or(|k| k.namespaced);
        if !object["metadata"].is_object() {
            return None;
        }
        let mut namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if namespaced && namespace.is_empty() {
            namespace = "default".into();
            object["metadata"]["namespace"] = json!("default");
        } else if !namespaced {
            namespace.clear();
            if let Some(m) = object["metadata"].as_object_mut() {
                m.remove("namespace");
            }
        }
        let name = object["metadata"]["name"].as_str()?.to_owned();
        if !object["metadata"]["labels"].is_object() {
            object["metadata"]["labels"] = json!({});
        }
        object["metadata"]["labels"][SOURCE_LABEL] = json!(self.source);
        let id = ObjectId {
            api_version,
            kind,
            namespace,
            name,
        };
        Some((id, object))
    }
}

#[cfg(test)]
mod tests {
    use super::super::checkout::ManifestFile;
    use super::*;
    use ferry_schema::validate::Options;

    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            id: "abc".into(),
            files: files
                .iter()
                .map(|(p, t)| ManifestFile {
                    path: (*p).into(),
                    id: format!("{p}-{}", t.len()),
                    bytes: t.as_bytes().to_vec(),
                })
                .collect(),
            ..Snapshot::default()
        }
    }

    fn load(s: &Snapshot) -> Desired {
        let validator = Validator::new(
            Options {
                strict: true,
                ..Options::default()
            },
            Vec::new(),
        );
        Loader::new(Arc::new(validator), "demo").load(s)
    }

    #[test]
    fn namespaces_first_defaults_and_labels() {
        let s = snapshot(&[
            (
                "a.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v\n",
            ),
            (
                "b.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
            ),
        ]);
        let d = load(&s);
        assert!(d.findings.is_empty(), "{:?}", d.findings);
        assert_eq!(d.objects[0].id.kind, "Namespace");
        assert_eq!(d.objects[0].id.namespace, "");
        assert_eq!(d.objects[1].id.namespace, "default");
        assert_eq!(
            d.objects[1].object.value()["metadata"]["labels"][SOURCE_LABEL],
            "demo"
        );
    }

    #[test]
    fn duplicates_and_invalid_fields_are_found_with_file_and_line() {
        let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
        let bad = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: many\n";
        let s = snapshot(&[("a.yaml", cm), ("b/c.yaml", cm), ("d.yaml", bad)]);
        let d = load(&s);
        let dup = d
            .findings
            .iter()
            .find(|f| f.message.contains("more than once"))
            .expect("dup");
        assert_eq!(dup.file.as_deref(), Some("b/c.yaml"));
        assert!(dup.message.contains("a.yaml"));
        let invalid = d
            .findings
            .iter()
            .find(|f| f.path.as_deref() == Some("/spec/replicas"))
            .expect("invalid");
        assert_eq!(invalid.line, Some(6));
        assert_eq!(invalid.path.as_deref(), Some("/spec/replicas"));
        assert_eq!(invalid.object.as_deref(), Some("Deployment default/web"));
    }
}
