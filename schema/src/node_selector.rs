//! Node selectors: `nodeSelectorTerms` of required node affinity, with the operators label
//! selectors lack (`Gt`, `Lt`) and `matchFields` (`metadata.name`). The scheduler and the
//! validator share this one matcher.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;

use crate::selector::SelectorError;

/// One requirement of a term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeRequirement {
    /// The value is one of these.
    In(String, Vec<String>),
    /// The value is absent or none of these.
    NotIn(String, Vec<String>),
    /// The key is present.
    Exists(String),
    /// The key is absent.
    DoesNotExist(String),
    /// The value is an integer greater than this.
    Gt(String, i64),
    /// The value is an integer less than this.
    Lt(String, i64),
}

impl NodeRequirement {
    fn of(r: &core::NodeSelectorRequirement) -> Result<NodeRequirement, SelectorError> {
        let key = r.key.clone();
        let values = r.values.clone().unwrap_or_default();
        let number = || -> Result<i64, SelectorError> {
            match values.as_slice() {
                [one] => one
                    .parse()
                    .map_err(|_| SelectorError::Requirement(format!("{key} {} {one}", r.operator))),
                _ => Err(SelectorError::Requirement(format!(
                    "{key} {}: exactly one integer value",
                    r.operator
                ))),
            }
        };
        Ok(match r.operator.as_str() {
            "In" => NodeRequirement::In(key, values),
            "NotIn" => NodeRequirement::NotIn(key, values),
            "Exists" => NodeRequirement::Exists(key),
            "DoesNotExist" => NodeRequirement::DoesNotExist(key),
            "Gt" => NodeRequirement::Gt(key.clone(), number()?),
            "Lt" => NodeRequirement::Lt(key.clone(), number()?),
            other => return Err(SelectorError::Operator(other.to_owned())),
        })
    }

    fn matches(&self, get: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            NodeRequirement::In(k, vs) => get(k).is_some_and(|v| vs.contains(&v)),
            NodeRequirement::NotIn(k, vs) => get(k).is_none_or(|v| !vs.contains(&v)),
            NodeRequirement::Exists(k) => get(k).is_some(),
            NodeRequirement::DoesNotExist(k) => get(k).is_none(),
            NodeRequirement::Gt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            NodeRequirement::Lt(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        }
    }
}

/// One term: all its label and field requirements hold. A term without requirements matches
/// no node, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelectorTerm {
    labels: Vec<NodeRequirement>,
    fields: Vec<NodeRequirement>,
}

impl NodeSelectorTerm {
    /// Reads a typed term.
    pub fn of(term: &core::NodeSelectorTerm) -> Result<NodeSelectorTerm, SelectorError> {
        let read = |list: &Option<Vec<core::NodeSelectorRequirement>>| {
            list.iter()
                .flatten()
                .map(NodeRequirement::of)
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(NodeSelectorTerm {
            labels: read(&term.match_expressions)?,
            fields: read(&term.match_fields)?,
        })
    }

    /// Whether a node with these labels and this name matches.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        if self.labels.is_empty() && self.fields.is_empty() {
            return false;
        }
        let label = |k: &str| labels.get(k).cloned();
        let field = |k: &str| (k == "metadata.name").then(|| name.to_owned());
        self.labels.iter().all(|r| r.matches(&label))
            && self.fields.iter().all(|r| r.matches(&field))
    }
}

/// Terms ORed together (`requiredDuringSchedulingIgnoredDuringExecution`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSelector(Vec<NodeSelectorTerm>);

impl NodeSelector {
    /// Reads a typed node selector.
    pub fn of(selector: &core::NodeSelector) -> Result<NodeSelector, SelectorError> {
        selector
            .node_selector_terms
            .iter()
            .map(NodeSelectorTerm::of)
            .collect::<Result<Vec<_>, _>>()
            .map(NodeSelector)
    }

    /// Whether a node matches one of the terms.
    pub fn matches(&self, labels: &BTreeMap<String, String>, name: &str) -> bool {
        self.0.iter().any(|t| t.matches(labels, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requirement(key: &str, op: &str, values: &[&str]) -> core::NodeSelectorRequirement {
        core::NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn every_operator_and_match_fields() {
        let labels: BTreeMap<String, String> = [("zone", "a"), ("cores", "8")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let term = |exprs: Vec<core::NodeSelectorRequirement>| {
            NodeSelectorTerm::of(&core::NodeSelectorTerm {
                match_expressions: Some(exprs),
                match_fields: None,
            })
            .expect("valid")
        };
        assert!(term(vec![requirement("zone", "In", &["a", "b"])]).matches(&labels, "n"));
        assert!(!term(vec![requirement("zone", "NotIn", &["a"])]).matches(&labels, "n"));
        assert!(term(vec![requirement("gpu", "DoesNotExist", &[])]).matches(&labels, "n"));
        assert!(term(vec![requirement("cores", "Gt", &["4"])]).matches(&labels, "n"));
        assert!(!term(vec![requirement("cores", "Lt", &["4"])]).matches(&labels, "n"));
        assert!(
            NodeSelectorTerm::of(&core::NodeSelectorTerm {
                match_expressions: None,
                match_fields: Some(vec![requirement("metadata.name", "In", &["n"])]),
            })
            .expect("valid")
            .matches(&labels, "n")
        );
        assert!(!NodeSelectorTerm::default().matches(&labels, "n"));
        assert!(
            NodeRequirement::of(&requirement("cores", "Gt", &["x"])).is_err(),
            "Gt needs an integer"
        );
        assert!(NodeRequirement::of(&requirement("cores", "Near", &[])).is_err());
    }
}
