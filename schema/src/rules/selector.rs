//! Label selectors: syntax (`matchLabels`, `matchExpressions` operators and values) and matching.

use serde_json::Value;

use super::Findings;
use super::metadata::labels;
use crate::pointer::JsonPointer;

/// Checks the syntax of a `LabelSelector`.
pub fn check(selector: &Value, path: &JsonPointer, out: &mut Findings) {
    labels(&selector["matchLabels"], &path.join("matchLabels"), out);
    let Some(expressions) = selector["matchExpressions"].as_array() else {
        return;
    };
    for (i, expr) in expressions.iter().enumerate() {
        let at = path.join("matchExpressions").join_index(i);
        let values = expr["values"].as_array().map_or(0, Vec::len);
        match expr["operator"].as_str() {
            Some("In" | "NotIn") if values == 0 => out.add(
                at.join("values"),
                "must be specified (non-empty) when operator is In or NotIn",
            ),
            Some("Exists" | "DoesNotExist") if values > 0 => out.add(
                at.join("values"),
                "may not be specified when operator is Exists or DoesNotExist",
            ),
            Some("In" | "NotIn" | "Exists" | "DoesNotExist") => {}
            Some(other) => out.add(
                at.join("operator"),
                format!(
                    "unsupported operator {other:?}: must be one of In, NotIn, Exists, DoesNotExist"
                ),
            ),
            None => {}
        }
        if let Some(key) = expr["key"].as_str()
            && let Some(problem) = super::names::qualified_name(key)
        {
            out.add(at.join("key"), format!("invalid label key: {problem}"));
        }
    }
}

/// True when the selector has neither labels nor expressions.
pub fn is_empty(selector: &Value) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_none_or(|m| m.is_empty())
        && selector["matchExpressions"]
            .as_array()
            .is_none_or(|e| e.is_empty())
}

/// Does the selector select an object with these labels? (One with an unknown operator
/// selects nothing; [`check`] reports it.)
pub fn matches(selector: &Value, labels: &Value) -> bool {
    crate::selector::LabelSelector::from_object(selector).is_ok_and(|s| s.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matching() {
        let labels = json!({"app": "web", "tier": "front"});
        assert!(matches(&json!({"matchLabels": {"app": "web"}}), &labels));
        assert!(!matches(&json!({"matchLabels": {"app": "db"}}), &labels));
        assert!(matches(
            &json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "x"]}]}),
            &labels
        ));
        assert!(!matches(
            &json!({"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}),
            &labels
        ));
        assert!(matches(
            &json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
            &labels
        ));
    }

    #[test]
    fn syntax() {
        let mut out = Findings::default();
        check(
            &json!({"matchExpressions": [
                {"key": "a", "operator": "In", "values": []},
                {"key": "b", "operator": "Exists", "values": ["x"]},
                {"key": "c", "operator": "Maybe"}
            ]}),
            &JsonPointer::root().join("selector"),
            &mut out,
        );
        let paths: Vec<String> = out
            .into_vec()
            .into_iter()
            .map(|f| f.path.into_string())
            .collect();
        assert_eq!(
            paths,
            vec![
                "/selector/matchExpressions/0/values",
                "/selector/matchExpressions/1/values",
                "/selector/matchExpressions/2/operator"
            ]
        );
    }
}
