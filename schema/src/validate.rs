//! Validation of one file: every document (and every item of a `kind: List`) becomes a
//! [`ResourceReport`] with a status and findings that name the field, its line and column.
//!
//! Per resource: `apiVersion` and `kind` must be present; `--skip` and `--reject` apply; the
//! kind's schema is found in the catalog (or the resource is an error, or skipped with
//! `--ignore-missing-schemas`); the schema is checked (explicit nulls count as absent, as in
//! the apiserver); then the semantic rules run; in strict mode, duplicate keys are errors.

use std::collections::HashSet;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;

use crate::catalog::SchemaCatalog;
use crate::generate::{Flavour, QUANTITY_PATTERN};
use crate::kinds;
use crate::loader::{Document, LoadLimits, Position, decode_text, load_documents};
use crate::pointer::JsonPointer;
use crate::position::{Anchor, locate};
use crate::rules::{self, Findings};

/// Most findings reported for one resource; the rest are counted in one last finding.
pub const MAX_FINDINGS: usize = 100;

/// The verdict on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Checked and valid.
    Valid,
    /// Checked and found wrong.
    Invalid,
    /// Could not be checked: malformed, no kind, no schema.
    Error,
    /// Not checked, on purpose (`--skip`, `--ignore-missing-schemas`).
    Skipped,
}

impl Status {
    /// The lowercase name used in every output format.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Error => "error",
            Status::Skipped => "skipped",
        }
    }

    /// Invalid or error.
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Invalid | Status::Error)
    }
}

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// JSON pointer of the field (empty for the whole document).
    pub path: String,
    /// 1-based line in the file.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong, for a person.
    pub message: String,
}

/// Identity of an object for duplicate detection: group, kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    /// API group (empty for core).
    pub group: String,
    /// Kind.
    pub kind: String,
    /// Namespace as written (empty when absent).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// The verdict on one resource of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceReport {
    /// The file, as named on the command line.
    pub filename: String,
    /// 0-based index of the document in the file.
    pub document: usize,
    /// Where the resource starts.
    pub start: Position,
    /// `apiVersion`, empty when absent.
    pub api_version: String,
    /// `kind`, empty when absent.
    pub kind: String,
    /// `metadata.namespace`, empty when absent.
    pub namespace: String,
    /// `metadata.name`, empty when absent.
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// Why, when not valid.
    pub errors: Vec<Finding>,
    /// The object's identity, for duplicate detection across files.
    pub key: Option<ObjectKey>,
}

impl ResourceReport {
    /// Whether the one reason it could not be checked is that no schema knows its kind (a
    /// custom resource, whose CRD may come with it).
    pub fn missing_schema(&self) -> bool {
        self.status == Status::Error
            && self.errors.len() == 1
            && self.errors[0].message.starts_with(MISSING_SCHEMA)
    }
}

/// How [`missing_schema_message`] starts.
const MISSING_SCHEMA: &str = "no schema for ";

/// A set of kinds, written as `Kind` or `apiVersion/Kind` (`Secret`, `apps/v1/Deployment`).
#[derive(Debug, Clone, Default)]
pub struct KindFilter(HashSet<String>);

impl KindFilter {
    /// From a list of entries.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(entries: I) -> Self {
        KindFilter(entries.into_iter().map(Into::into).collect())
    }

    /// Does the filter name this kind?
    pub fn matches(&self, api_version: &str, kind: &str) -> bool {
        !self.0.is_empty()
            && (self.0.contains(kind) || self.0.contains(&format!("{api_version}/{kind}")))
    }
}

/// How to validate.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Unknown fields and duplicate keys are errors.
    pub strict: bool,
    /// Kinds not checked (reported as skipped).
    pub skip: KindFilter,
    /// Kinds refused (reported as invalid).
    pub reject: KindFilter,
    /// A kind without a schema is skipped rather than an error.
    pub ignore_missing_schemas: bool,
    /// Limits on file and document size and shape.
    pub limits: LoadLimits,
}

/// Validates files against the catalog's schemas and the semantic rules.
#[derive(Debug)]
pub struct Validator {
    catalog: SchemaCatalog,
    options: Options,
}

impl Validator {
    /// A validator with built-in schemas after the extra `schema_locations`.
    pub fn new(options: Options, schema_locations: Vec<std::path::PathBuf>) -> Self {
        let flavour = if options.strict {
            Flavour::Strict
        } else {
            Flavour::Normal
        };
        Validator {
            catalog: SchemaCatalog::new(flavour, schema_locations),
            options,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Checks one parsed object (as the apiserver receives it): its schema and the semantic
    /// rules. Findings carry JSON pointer paths; their positions are zero (there is no text).
    pub fn check_object(&self, value: Value) -> ResourceReport {
        let mut report = file_error("", String::new());
        report.errors.clear();
        report.start = Position::default();
        self.check_resource(value, &JsonPointer::root(), &mut report, &|_, _| {
            Position::default()
        });
        report
    }

    /// Validates a file's bytes.
    pub fn validate_bytes(&self, filename: &str, bytes: &[u8]) -> Vec<ResourceReport> {
        match decode_text(bytes, &self.options.limits) {
            Ok(text) => self.validate_text(filename, text),
            Err(error) => vec![file_error(filename, error.to_string())],
        }
    }

    /// Validates a file's text.
    pub fn validate_text(&self, filename: &str, text: &str) -> Vec<ResourceReport> {
        let mut reports = Vec::new();
        for doc in load_documents(text, &self.options.limits) {
            self.validate_document(filename, text, doc, &mut reports);
        }
        reports
    }

    fn validate_document(
        &self,
        filename: &str,
        file_text: &str,
        doc: Document,
        out: &mut Vec<ResourceReport>,
    ) {
        let doc_text = &file_text[doc.range.clone()];
        let line_offset = doc.start.line - 1;
        let mut report = ResourceReport {
            filename: filename.to_owned(),
            document: doc.index,
            start: doc.start,
            api_version: String::new(),
            kind: String::new(),
            namespace: String::new(),
            name: String::new(),
            status: Status::Error,
            errors: Vec::new(),
            key: None,
        };
        let value = match doc.value {
            Ok(value) => value,
            Err(located) => {
                report.errors.push(Finding {
                    path: String::new(),
                    line: located.position.line,
                    column: located.position.column,
                    message: located.error.to_string(),
                });
                out.push(report);
                return;
            }
        };
        let duplicates: Vec<Finding> = if self.options.strict {
            doc.duplicate_keys
                .iter()
                .map(|d| Finding {
                    path: d.pointer.clone(),
                    line: d.position.line,
                    column: d.position.column,
                    message: format!(
                        "duplicate key {:?}: an earlier value is silently replaced",
                        crate::pointer::segments(&d.pointer)
                            .last()
                            .cloned()
                            .unwrap_or_default()
                    ),
                })
                .collect()
        } else {
            Vec::new()
        };
        let at = |pointer: &str, anchor| locate(doc_text, line_offset, pointer, anchor);

        let Value::Object(_) = &value else {
            let pos = doc.start;
            report.errors.push(Finding {
                path: String::new(),
                line: pos.line,
                column: pos.column,
                message: format!(
                    "a document must be a mapping (a Kubernetes object), not {}",
                    type_name(&value)
                ),
            });
            out.push(report);
            return;
        };
        let is_list = value["kind"]
            .as_str()
            .is_some_and(|k| k == "List" || (k.ends_with("List") && value["items"].is_array()));
        if is_list {
            let Value::Object(mut map) = value else {
                return;
            };
            let items = match map.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for (i, item) in items.into_iter().enumerate() {
                let prefix = JsonPointer::root().join("items").join_index(i);
                let mut item_report = report.clone();
                item_report.start = at(prefix.as_str(), Anchor::Value);
                self.check_resource(item, &prefix, &mut item_report, &at);
                out.push(item_report);
            }
            if !duplicates.is_empty() {
                report.status = Status::Invalid;
                report.api_version = map
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                report.kind = map
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                report.errors = duplicates;
                out.push(report);
            }
            return;
        }
        self.check_resource(value, &JsonPointer::root(), &mut report, &at);
        if !duplicates.is_empty() && report.status != Status::Error {
            report.status = Status::Invalid;
            report.errors.extend(duplicates);
            report.errors.sort_by_key(|f| (f.line, f.column));
        }
        out.push(report);
    }

    fn check_resource(
        &self,
        mut value: Value,
        prefix: &JsonPointer,
        report: &mut ResourceReport,
        at: &dyn Fn(&str, Anchor) -> Position,
    ) {
        let finding = |path: &JsonPointer, message: String, anchor: Anchor| {
            let full = format!("{}{}", prefix.as_str(), path.as_str());
            let pos = at(&full, anchor);
            Finding {
                path: full,
                line: pos.line,
                column: pos.column,
                message,
            }
        };
        let root = JsonPointer::root();
        if !value.is_object() {
            report.status = Status::Error;
            report.errors.push(finding(
                &root,
                format!("a list item must be a mapping, not {}", type_name(&value)),
                Anchor::Value,
            ));
            return;
        }
        report.api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
        report.kind = value["kind"].as_str().unwrap_or_default().to_owned();
        report.namespace = value["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        report.name = value["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut missing = Vec::new();
        if report.api_version.is_empty() {
            missing.push("apiVersion");
        }
        if report.kind.is_empty() {
            missing.push("kind");
        }
        if !missing.is_empty() {
            report.status = Status::Error;
            let message = format!(
                "{} missing: cannot tell what kind of object this is",
                missing.join(" and ")
            );
            report.errors.push(finding(&root, message, Anchor::Value));
            return;
        }
        let (group, _) = kinds::split_api_version(&report.api_version);
        if !report.name.is_empty() {
            report.key = Some(ObjectKey {
                group: group.to_owned(),
                kind: report.kind.clone(),
                namespace: report.namespace.clone(),
                name: report.name.clone(),
            });
        }
        if self
            .options
            .reject
            .matches(&report.api_version, &report.kind)
        {
            report.status = Status::Invalid;
            let message = format!("kind {} is rejected (--reject)", report.kind);
            report
                .errors
                .push(finding(&root.join("kind"), message, Anchor::Value));
            return;
        }
        if self.options.skip.matches(&report.api_version, &report.kind) {
            report.status = Status::Skipped;
            return;
        }
        let schema = match self.catalog.get(&report.api_version, &report.kind) {
            Ok(Some(schema)) => schema,
            Ok(None) if self.options.ignore_missing_schemas => {
                report.status = Status::Skipped;
                return;
            }
            Ok(None) => {
                report.status = Status::Error;
                let message = missing_schema_message(&report.api_version, &report.kind);
                report
                    .errors
                    .push(finding(&root.join("apiVersion"), message, Anchor::Value));
                return;
            }
            Err(error) => {
                report.status = Status::Error;
                report
                    .errors
                    .push(finding(&root, error.to_string(), Anchor::Value));
                return;
            }
        };
        strip_nulls(&mut value);
        let mut errors: Vec<Finding> = Vec::new();
        for error in schema.validator.iter_errors(&value) {
            let path = JsonPointer::from_string(error.instance_path().as_str().to_owned());
            match error.kind() {
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for field in unexpected {
                        errors.push(finding(
                            &path.join(field),
                            format!("unknown field {field:?}"),
                            Anchor::Key,
                        ));
                    }
                }
                ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or_default();
                    errors.push(finding(
                        &path.join(name),
                        format!("required field {name:?} is missing"),
                        Anchor::Value,
                    ));
                }
                kind => errors.push(finding(
                    &path,
                    schema_message(kind, error.instance()),
                    Anchor::Value,
                )),
            }
            if errors.len() > MAX_FINDINGS {
                break;
            }
        }
        if let Some(info) = kinds::find(&report.api_version, &report.kind) {
            let mut findings = Findings::default();
            rules::check(info, &value, &mut findings);
            for f in findings.into_vec() {
                if errors.len() > MAX_FINDINGS {
                    break;
                }
                // The schema's finding on the same field is more basic; keep just that one.
                let full = format!("{}{}", prefix.as_str(), f.path.as_str());
                if !errors.iter().any(|e| e.path == full) {
                    errors.push(finding(&f.path, f.message, f.anchor));
                }
            }
        }
        if errors.len() > MAX_FINDINGS {
            errors.truncate(MAX_FINDINGS);
            errors.push(Finding {
                path: String::new(),
                line: report.start.line,
                column: report.start.column,
                message: format!("more than {MAX_FINDINGS} problems; the rest are not shown"),
            });
        }
        errors.sort_by_key(|f| (f.line, f.column));
        report.status = if errors.is_empty() {
            Status::Valid
        } else {
            Status::Invalid
        };
        report.errors = errors;
    }
}

/// A report for a file that could not be read at all.
pub fn file_error(filename: &str, message: String) -> ResourceReport {
    ResourceReport {
        filename: filename.to_owned(),
        document: 0,
        start: Position { line: 1, column: 1 },
        api_version: String::new(),
        kind: String::new(),
        namespace: String::new(),
        name: String::new(),
        status: Status::Error,
        errors: vec![Finding {
            path: String::new(),
            line: 1,
            column: 1,
            message,
        }],
        key: None,
    }
}

fn missing_schema_message(api_version: &str, kind: &str) -> String {
    let served: Vec<String> = kinds::KINDS
        .iter()
        .filter(|k| k.kind == kind)
        .map(|k| k.api_version())
        .collect();
    if served.is_empty() {
        format!(
            "no schema for {kind} ({api_version}): for a custom resource, pass its schema with \
             --schema-location, or use --ignore-missing-schemas"
        )
    } else {
        format!(
            "no schema for {kind} in {api_version}: {kind} is served as {}",
            served.join(", ")
        )
    }
}

/// Removes object members whose value is `null`: the apiserver treats them as absent.
fn strip_nulls(value: &mut Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        format!("{}...", text.chars().take(57).collect::<String>())
    } else {
        text
    }
}

fn schema_message(kind: &ValidationErrorKind, instance: &Value) -> String {
    match kind {
        ValidationErrorKind::Type { kind } => {
            let expected: Vec<String> = match kind {
                TypeKind::Single(t) => vec![t.to_string()],
                TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect(),
            };
            let expected: Vec<&str> = expected
                .iter()
                .map(String::as_str)
                .filter(|t| *t != "null")
                .collect();
            let wanted = match expected.as_slice() {
                ["string", "number"] | ["number", "string"] => {
                    "a quantity (a number, or a string such as 100m, 1Gi, 0.5)".to_owned()
                }
                ["integer", "string"] | ["string", "integer"] => {
                    "an integer or a string".to_owned()
                }
                [single] => article(single),
                many => many
                    .iter()
                    .map(|t| article(t))
                    .collect::<Vec<_>>()
                    .join(" or "),
            };
            format!(
                "expected {wanted}, got {} {}",
                type_name(instance),
                short(instance)
            )
        }
        ValidationErrorKind::Enum { options } => {
            let values: Vec<String> = options
                .as_array()
                .map(|o| o.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default();
            format!(
                "unsupported value {}: must be one of {}",
                short(instance),
                values.join(", ")
            )
        }
        ValidationErrorKind::Pattern { pattern } if pattern == QUANTITY_PATTERN => format!(
            "invalid quantity {}: expected a number with an optional suffix (e.g. 100m, 0.5, 128Mi, 1Gi, 1e3)",
            short(instance)
        ),
        ValidationErrorKind::Minimum { limit } => {
            format!("{} is less than the minimum {limit}", short(instance))
        }
        ValidationErrorKind::Maximum { limit } => {
            format!("{} is greater than the maximum {limit}", short(instance))
        }
        other => {
            let text = format!("{other:?}");
            let name = text
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_owned();
            format!("{} fails the schema's {name} rule", short(instance))
        }
    }
}

fn article(t: &str) -> String {
    match t {
        "integer" | "object" | "array" => format!("an {t}"),
        _ => format!("a {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(text: &str, strict: bool) -> Vec<ResourceReport> {
        let options = Options {
            strict,
            ..Options::default()
        };
        Validator::new(options, Vec::new()).validate_text("test.yaml", text)
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports:
        - containerPort: 8080
        resources:
          requests: {cpu: 100m, memory: 64Mi}
          limits: {cpu: \"1\", memory: 128Mi}
";

    #[test]
    fn a_valid_deployment() {
        let reports = validate(DEPLOYMENT, true);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].status, Status::Valid, "{:?}", reports[0].errors);
        assert_eq!(reports[0].kind, "Deployment");
        assert_eq!(reports[0].name, "web");
    }

    #[test]
    fn port_out_of_range_is_positioned() {
        let text = DEPLOYMENT.replace("containerPort: 8080", "containerPort: 70000");
        let r = &validate(&text, false)[0];
        assert_eq!(r.status, Status::Invalid);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        let e = &r.errors[0];
        assert_eq!(
            e.path,
            "/spec/template/spec/containers/0/ports/0/containerPort"
        );
        assert_eq!((e.line, e.column), (20, 26));
        assert!(e.message.contains("65535"), "{}", e.message);
    }

    #[test]
    fn selector_must_match_template() {
        let text = DEPLOYMENT.replace("      app: web\n  template", "      app: api\n  template");
        let r = &validate(&text, false)[0];
        assert_eq!(r.status, Status::Invalid);
        assert_eq!(r.errors[0].path, "/spec/selector");
        assert!(r.errors[0].message.contains("does not match"));
    }

    #[test]
    fn unknown_fields_only_in_strict_mode() {
        let text = DEPLOYMENT.replace("  replicas: 2", "  replicas: 2\n  replica: 3");
        assert_eq!(validate(&text, false)[0].status, Status::Valid);
        let r = &validate(&text, true)[0];
        assert_eq!(r.status, Status::Invalid);
        assert_eq!(r.errors[0].path, "/spec/replica");
        assert_eq!((r.errors[0].line, r.errors[0].column), (8, 3));
        assert_eq!(r.errors[0].message, "unknown field \"replica\"");
    }

    #[test]
    fn duplicate_keys_only_in_strict_mode() {
        let text = DEPLOYMENT.replace("  replicas: 2", "  replicas: 2\n  replicas: 3");
        assert_eq!(validate(&text, false)[0].status, Status::Valid);
        let r = &validate(&text, true)[0];
        assert_eq!(r.status, Status::Invalid);
        assert_eq!(r.errors[0].path, "/spec/replicas");
        assert!(r.errors[0].message.contains("duplicate key"));
    }

    #[test]
    fn quantities_enums_and_types() {
        let text = DEPLOYMENT
            .replace("memory: 64Mi", "memory: 64MB")
            .replace(
                "image: nginx:1.27",
                "image: nginx:1.27\n        imagePullPolicy: Sometimes",
            )
            .replace("replicas: 2", "replicas: two");
        let r = &validate(&text, false)[0];
        let messages: Vec<&str> = r.errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(r.errors.len(), 3, "{messages:?}");
        assert!(
            messages[0].starts_with("expected an integer, got a string \"two\""),
            "{messages:?}"
        );
        assert!(
            messages[1].starts_with("unsupported value \"Sometimes\""),
            "{messages:?}"
        );
        assert!(
            messages[2].starts_with("invalid quantity \"64MB\""),
            "{messages:?}"
        );
    }

    #[test]
    fn missing_kind_and_unknown_kind_are_errors() {
        let r = &validate("apiVersion: v1\nmetadata: {name: x}\n", false)[0];
        assert_eq!(r.status, Status::Error);
        let r = &validate(
            "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata: {name: x}\n",
            false,
        )[0];
        assert_eq!(r.status, Status::Error);
        assert!(
            r.errors[0].message.contains("served as apps/v1"),
            "{}",
            r.errors[0].message
        );
        let options = Options {
            ignore_missing_schemas: true,
            ..Options::default()
        };
        let r = &Validator::new(options, Vec::new()).validate_text(
            "x",
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n",
        )[0];
        assert_eq!(r.status, Status::Skipped);
    }

    #[test]
    fn list_items_are_checked_one_by_one() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: ok}\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: Not_OK}\n";
        let reports = validate(text, false);
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].status, Status::Valid);
        assert_eq!(reports[1].status, Status::Invalid);
        assert_eq!(reports[1].errors[0].path, "/items/1/metadata/name");
        assert_eq!(reports[1].errors[0].line, 9);
    }

    #[test]
    fn explicit_nulls_count_as_absent() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  creationTimestamp: null\nspec:\n  selector: null\n  ports:\n  - port: 80\n";
        let r = &validate(text, true)[0];
        assert_eq!(r.status, Status::Valid, "{:?}", r.errors);
    }

    #[test]
    fn skip_and_reject() {
        let options = Options {
            skip: KindFilter::new(["ConfigMap"]),
            reject: KindFilter::new(["v1/Secret"]),
            ..Options::default()
        };
        let v = Validator::new(options, Vec::new());
        let r = v.validate_text("x", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: b}\n");
        assert_eq!(r[0].status, Status::Skipped);
        assert_eq!(r[1].status, Status::Invalid);
    }
}
