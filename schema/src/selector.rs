//! Label and field selectors: the one parser and matcher every part of ferry uses.
//!
//! A [`LabelSelector`] comes from the query-string form (`app=web,tier!=db,env in (a,b),!old`)
//! or from an object's `LabelSelector` (`matchLabels` plus `matchExpressions`); both become the
//! same list of requirements, which match a `metadata.labels` map and print back in the text
//! form kubectl shows (the scale subresource's `status.selector`, Table columns). A
//! [`FieldSelector`] is the `fieldSelector` query parameter, limited to the fields Kubernetes
//! lets each kind be selected by.

use std::fmt;

use serde_json::Value;

/// Why a selector could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A label requirement that is not one of the selector grammar's forms.
    #[error("unable to parse requirement: {0:?}")]
    Requirement(String),
    /// `in`/`notin` without a parenthesised set of values.
    #[error("expected a parenthesised set of values, found {0:?}")]
    ValueSet(String),
    /// A `matchExpressions` operator that does not exist.
    #[error("{0:?} is not a valid label selector operator")]
    Operator(String),
    /// A field selector term that is not `field=value` or `field!=value`.
    #[error("invalid field selector {0:?}: expected field=value or field!=value")]
    FieldTerm(String),
    /// A field the kind cannot be selected by.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
}

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` (also `key==value`, and every `matchLabels` entry).
    Equals(String, String),
    /// `key!=value`: the label is absent or has another value.
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn(String, Vec<String>),
    /// `key`: the label exists.
    Exists(String),
    /// `!key`: the label does not exist.
    NotExists(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        self.matches_with(|k| labels.get(k).and_then(Value::as_str))
    }

    fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        match self {
            Requirement::Equals(k, v) => get(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            Requirement::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => get(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => get(k).is_some(),
            Requirement::NotExists(k) => get(k).is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requirement::Equals(k, v) => write!(f, "{k}={v}"),
            Requirement::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(",")),
            Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(",")),
            Requirement::Exists(k) => write!(f, "{k}"),
            Requirement::NotExists(k) => write!(f, "!{k}"),
        }
    }
}

/// A label selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits at commas that are not inside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn set_values(text: &str) -> Result<Vec<String>, SelectorError> {
    let inner = text
        .trim()
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| SelectorError::ValueSet(text.to_owned()))?;
    Ok(inner.split(',').map(|v| v.trim().to_owned()).collect())
}

fn strings(values: &Value) -> Vec<String> {
    values
        .as_array()
        .map(|v| {
            v.iter()
                .map(|s| match s {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl LabelSelector {
    /// Parses the query-string form (`labelSelector`).
    pub fn parse(text: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top(text) {
            let requirement = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEquals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Equals(k.trim().to_owned(), v.trim().to_owned())
            } else if let Some((k, v)) = part.split_once(" notin ") {
                Requirement::NotIn(k.trim().to_owned(), set_values(v)?)
            } else if let Some((k, v)) = part.split_once(" in ") {
                Requirement::In(k.trim().to_owned(), set_values(v)?)
            } else if part.contains(char::is_whitespace) || part.contains(['(', ')']) {
                return Err(SelectorError::Requirement(part.to_owned()));
            } else {
                Requirement::Exists(part.to_owned())
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector(requirements))
    }

    /// Reads an object's `LabelSelector` (`matchLabels` and `matchExpressions`). An unknown
    /// operator is an error: it would otherwise select nothing, or everything.
    pub fn from_object(selector: &Value) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector["matchLabels"].as_object() {
            for (key, value) in labels {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                requirements.push(Requirement::Equals(key.clone(), value));
            }
        }
        for expr in selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = expr["key"].as_str().unwrap_or_default().to_owned();
            let values = strings(&expr["values"]);
            requirements.push(match expr["operator"].as_str().unwrap_or_default() {
                "In" => Requirement::In(key, values),
                "NotIn" => Requirement::NotIn(key, values),
                "Exists" => Requirement::Exists(key),
                "DoesNotExist" => Requirement::NotExists(key),
                other => return Err(SelectorError::Operator(other.to_owned())),
            });
        }
        Ok(LabelSelector(requirements))
    }

    /// A `spec.selector` map of a Service or ReplicationController (`{app: web}`).
    pub fn from_map(labels: &Value) -> LabelSelector {
        let requirements = labels
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| Requirement::Equals(k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        LabelSelector(requirements)
    }

    /// Does an object with these labels (`metadata.labels`, possibly absent) match?
    pub fn matches(&self, labels: &Value) -> bool {
        self.0.iter().all(|r| r.matches(labels))
    }

    /// Does an object with these labels (a typed `metadata.labels`) match?
    pub fn matches_labels(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        self.0
            .iter()
            .all(|r| r.matches_with(|k| labels.get(k).map(String::as_str)))
    }

    /// A typed `LabelSelector` (a pod affinity term's, a topology spread constraint's).
    pub fn from_typed(
        selector: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<LabelSelector, SelectorError> {
        let value = serde_json::to_value(selector)
            .map_err(|e| SelectorError::Requirement(e.to_string()))?;
        LabelSelector::from_object(&value)
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The requirements, in order.
    pub fn requirements(&self) -> &[Requirement] {
        &self.0
    }
}

impl fmt::Display for LabelSelector {
    /// The text form: requirements joined with commas, as kubectl prints selectors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The fields each kind can be selected by, besides `metadata.name` and `metadata.namespace`
/// (as the kube-apiserver registers them).
pub fn selectable_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Job" => &["status.successful"],
        "ReplicaSet" | "ReplicationController" => &["status.replicas"],
        "CertificateSigningRequest" => &["spec.signerName"],
        "Revision" => &[REVISION_OBJECT_FIELD],
        _ => &[],
    }
}

/// The field a ferry `Revision` is selected by when it changed an object: its value is each of
/// the revision's changes as `kind/namespace/name` and `kind/name` (the kind in lower case), so
/// `status.changes.object=deployment/demo/web` finds the revisions that changed that object.
pub const REVISION_OBJECT_FIELD: &str = "status.changes.object";

/// The values of a field that has several (a Revision's changed objects); `None` for the
/// ordinary single-valued fields.
fn field_values(object: &Value, path: &str) -> Option<Vec<String>> {
    if path != REVISION_OBJECT_FIELD {
        return None;
    }
    let mut out = Vec::new();
    for change in object["status"]["changes"].as_array().into_iter().flatten() {
        let o = &change["object"];
        let kind = o["kind"].as_str().unwrap_or_default().to_ascii_lowercase();
        let name = o["name"].as_str().unwrap_or_default();
        if let Some(ns) = o["namespace"].as_str().filter(|ns| !ns.is_empty()) {
            out.push(format!("{kind}/{ns}/{name}"));
        }
        out.push(format!("{kind}/{name}"));
    }
    Some(out)
}

/// A selector value of a multi-valued field, normalised as its values are (the kind lowered).
fn normalise_value(field: &str, value: &str) -> String {
    if field != REVISION_OBJECT_FIELD {
        return value.to_owned();
    }
    match value.split_once('/') {
        Some((kind, rest)) => format!("{}/{rest}", kind.to_ascii_lowercase()),
        None => value.to_owned(),
    }
}

/// Every field any kind can be selected by: what a change must remember the previous value
/// of, so that a watch sees an object stop matching.
pub const ALL_SELECTABLE_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "spec.unschedulable",
    "spec.signerName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
    "status.successful",
    "status.replicas",
    "type",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    REVISION_OBJECT_FIELD,
];

/// The value of a dotted field as a field selector compares it (absent is "").
pub fn field_value(object: &Value, path: &str) -> String {
    let mut v = object;
    for part in path.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(map) if path == "source" => map
            .get("component")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        other => other.to_string(),
    }
}

/// Could a change from `old` to `new` change whether any selector matches? (Labels or a
/// selectable field changed.)
pub fn selection_changed(old: &Value, new: &Value) -> bool {
    old["metadata"]["labels"] != new["metadata"]["labels"]
        || ALL_SELECTABLE_FIELDS
            .iter()
            .any(|f| match field_values(old, f) {
                Some(values) => Some(values) != field_values(new, f),
                None => field_value(old, f) != field_value(new, f),
            })
}

/// The part of `object` that label and field selectors read: `metadata.labels` and every
/// selectable field present (a Revision's changed objects by their identities only). A
/// selector matches it exactly as it matches the whole object, so a watch can keep this
/// instead of the object.
pub fn selectable(object: &Value) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    let labels = &object["metadata"]["labels"];
    if !labels.is_null() {
        put(&mut out, "metadata.labels", labels.clone());
    }
    for path in ALL_SELECTABLE_FIELDS {
        if *path == REVISION_OBJECT_FIELD {
            let changes: Vec<Value> = object["status"]["changes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let o = &c["object"];
                    serde_json::json!({"object": {
                        "kind": o["kind"], "namespace": o["namespace"], "name": o["name"],
                    }})
                })
                .collect();
            if !changes.is_empty() {
                put(&mut out, "status.changes", Value::Array(changes));
            }
            continue;
        }
        let mut v = object;
        for part in path.split('.') {
            v = &v[part];
        }
        if !v.is_null() {
            put(&mut out, path, v.clone());
        }
    }
    out
}

/// Sets the dotted `path` of `target` (an object), making the objects on the way.
fn put(target: &mut Value, path: &str, value: Value) {
    let mut at = target;
    let mut parts = path.split('.').peekable();
    while let Some(part) = parts.next() {
        let Some(map) = at.as_object_mut() else {
            return;
        };
        if parts.peek().is_none() {
            map.insert(part.to_owned(), value);
            return;
        }
        at = map
            .entry(part.to_owned())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
}

/// One field selector term.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    equal: bool,
    value: String,
}

/// A parsed field selector; empty selects everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<FieldTerm>);

impl FieldSelector {
    /// Parses the `fieldSelector` query parameter for objects of `kind`.
    pub fn parse(text: &str, kind: &str) -> Result<FieldSelector, SelectorError> {
        let mut terms = Vec::new();
        for part in split_top(text) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(SelectorError::FieldTerm(part.to_owned()));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace")
                && !selectable_fields(kind).contains(&field)
            {
                return Err(SelectorError::UnsupportedField(field.to_owned()));
            }
            terms.push(FieldTerm {
                field: field.to_owned(),
                equal,
                value: normalise_value(field, value.trim()),
            });
        }
        Ok(FieldSelector(terms))
    }

    /// Does the object match?
    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|t| {
            let found = match field_values(object, &t.field) {
                Some(values) => values.contains(&t.value),
                None => field_value(object, &t.field) == t.value,
            };
            found == t.equal
        })
    }

    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selectors_match_the_selectable_part_as_the_whole_object() {
        let pod = json!({"kind": "Pod", "metadata": {"name": "web-1", "namespace": "demo",
            "labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.5", "conditions": [{"type": "Ready"}]}});
        let part = selectable(&pod);
        assert!(part["spec"].get("containers").is_none(), "{part}");
        assert!(part["metadata"].get("annotations").is_none(), "{part}");
        for (labels, fields) in [
            ("app=web", ""),
            ("app in (web,api),tier!=back", "spec.nodeName=n1"),
            ("!gone", "status.phase=Running,metadata.namespace=demo"),
            ("app=api", ""),
            ("", "spec.nodeName=n2"),
            ("", "status.podIP=10.0.0.5,metadata.name!=web-1"),
        ] {
            let l = LabelSelector::parse(labels).expect("labels");
            let f = FieldSelector::parse(fields, "Pod").expect("fields");
            let whole = l.matches(&pod["metadata"]["labels"]) && f.matches(&pod);
            let cut = l.matches(&part["metadata"]["labels"]) && f.matches(&part);
            assert_eq!(whole, cut, "{labels} / {fields}");
        }
        let revision = json!({"kind": "Revision", "metadata": {"name": "r1"}, "status": {"changes": [
            {"action": "Update", "diff": "long", "object": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "demo", "name": "web"}}]}});
        let part = selectable(&revision);
        let f = FieldSelector::parse("status.changes.object=Deployment/demo/web", "Revision")
            .expect("field");
        assert!(f.matches(&part) && f.matches(&revision));
        assert!(part["status"]["changes"][0].get("diff").is_none());
        let unlabelled = selectable(&json!({"metadata": {"name": "x"}}));
        assert!(!selection_changed(
            &unlabelled,
            &selectable(&json!({"metadata": {"name": "x"}, "data": {"k": "v"}}))
        ));
    }

    #[test]
    fn revisions_are_selected_by_the_objects_they_changed() {
        let revision = json!({"kind": "Revision", "status": {"changes": [
            {"action": "Update", "object": {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": "demo", "name": "web"}},
            {"action": "Create", "object": {"apiVersion": "v1", "kind": "Namespace", "name": "demo"}}
        ]}});
        let select = |s: &str| {
            FieldSelector::parse(s, "Revision")
                .expect(s)
                .matches(&revision)
        };
        assert!(select("status.changes.object=Deployment/demo/web"));
        assert!(select("status.changes.object=deployment/web"));
        assert!(select("status.changes.object=namespace/demo"));
        assert!(!select("status.changes.object=deployment/other/web"));
        assert!(select("status.changes.object!=service/demo/web"));
        assert!(!select("status.changes.object!=deployment/demo/web"));
        assert!(FieldSelector::parse("status.changes.object=x", "ConfigMap").is_err());
    }

    #[test]
    fn label_selectors_in_text() {
        let labels = json!({"app": "web", "tier": "front"});
        let yes = [
            "app=web",
            "app==web",
            "tier!=db",
            "app in (web, api)",
            "env notin (prod)",
            "app",
            "!env",
            "app=web,tier=front",
            "",
        ];
        let no = ["app=db", "app notin (web)", "env", "!app", "app in (api)"];
        for s in yes {
            assert!(LabelSelector::parse(s).expect(s).matches(&labels), "{s}");
        }
        for s in no {
            assert!(!LabelSelector::parse(s).expect(s).matches(&labels), "{s}");
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b").is_err());
        assert!(
            LabelSelector::parse("")
                .expect("empty")
                .matches(&Value::Null)
        );
    }

    #[test]
    fn label_selectors_from_objects_match_and_print() {
        let labels = json!({"app": "web", "tier": "front"});
        let selector = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["front", "x"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "NotIn", "values": ["a"]},
                {"key": "tier", "operator": "Exists"}
            ]
        }))
        .expect("reads");
        assert!(selector.matches(&labels));
        assert_eq!(
            selector.to_string(),
            "app=web,tier in (front,x),!legacy,zone notin (a),tier"
        );
        // The text form reads back to the same selector.
        assert_eq!(
            LabelSelector::parse(&selector.to_string()).expect("round trip"),
            selector
        );
        assert!(
            !LabelSelector::from_object(&json!({"matchLabels": {"app": "db"}}))
                .expect("reads")
                .matches(&labels)
        );
        assert_eq!(
            LabelSelector::from_object(
                &json!({"matchExpressions": [{"key": "a", "operator": "Near"}]})
            ),
            Err(SelectorError::Operator("Near".into()))
        );
        assert!(LabelSelector::from_map(&json!({"app": "web"})).matches(&labels));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        assert!(
            FieldSelector::parse("metadata.name=p,status.phase=Running", "Pod")
                .expect("parses")
                .matches(&pod)
        );
        assert!(
            !FieldSelector::parse("spec.nodeName!=n1", "Pod")
                .expect("parses")
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("spec.nodeName=", "Pod")
                .expect("parses")
                .matches(&json!({}))
        );
        assert_eq!(
            FieldSelector::parse("spec.replicas=1", "Deployment"),
            Err(SelectorError::UnsupportedField("spec.replicas".into()))
        );
    }

    #[test]
    fn selection_changes_are_seen_in_labels_and_selectable_fields_only() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"nodeName": ""}, "status": {"phase": "Pending"}});
        let mut b = a.clone();
        b["status"]["conditions"] = json!([{"type": "Ready"}]);
        assert!(!selection_changed(&a, &b));
        b["status"]["phase"] = json!("Running");
        assert!(selection_changed(&a, &b));
        let mut c = a.clone();
        c["metadata"]["labels"]["app"] = json!("db");
        assert!(selection_changed(&a, &c));
    }
}
