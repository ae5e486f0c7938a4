//! A `Revision` flattened into one audit record: who, what commit, what result, what changed.

use serde::Serialize;
use serde_json::Value;

/// One object a revision changed.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditChange {
    /// `Create`, `Update` or `Delete`.
    pub action: Value,
    /// The object's apiVersion.
    pub api_version: Value,
    /// Its kind.
    pub kind: Value,
    /// Its namespace ("" when cluster-scoped).
    pub namespace: String,
    /// Its name.
    pub name: Value,
    /// The unified diff of its manifest (Secret values redacted).
    pub diff: Value,
}

/// One sync attempt as the audit reports it. Absent fields are `null` in JSON, so that every
/// record has the same keys.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// The `Revision`'s name.
    pub revision: Value,
    /// The source.
    pub source: Value,
    /// The commit.
    pub commit: Value,
    /// Its parents.
    pub parents: Vec<Value>,
    /// Author (name, email, time).
    pub author: Value,
    /// Committer.
    pub committer: Value,
    /// Commit message.
    pub message: Value,
    /// What started the attempt (`watch`, `poll`, `manual`, `rollback`, ...).
    pub trigger: Value,
    /// Who asked (`ferry sync`, `ferry rollback`).
    pub requested_by: Value,
    /// Why (a rollback's reason).
    pub reason: Value,
    /// The commit a rollback went back from.
    pub rollback_from: Value,
    /// Applied, Rejected, Failed or Superseded.
    pub result: Value,
    /// Healthy, Progressing, Degraded or Unknown.
    pub health: Value,
    /// When the attempt started.
    pub started: Value,
    /// When it finished.
    pub finished: Value,
    /// When the health last changed.
    pub health_changed: Value,
    /// The objects changed.
    pub changes: Vec<AuditChange>,
    /// Why it was refused, with file, line, object and field.
    pub errors: Vec<Value>,
}

impl AuditRecord {
    /// Flattens a `Revision` object.
    pub fn of(revision: &Value) -> AuditRecord {
        let spec = &revision["spec"];
        let status = &revision["status"];
        let changes = status["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| AuditChange {
                action: c["action"].clone(),
                api_version: c["object"]["apiVersion"].clone(),
                kind: c["object"]["kind"].clone(),
                namespace: c["object"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                name: c["object"]["name"].clone(),
                diff: c["diff"].clone(),
            })
            .collect();
        AuditRecord {
            revision: revision["metadata"]["name"].clone(),
            source: spec["source"].clone(),
            commit: spec["commit"].clone(),
            parents: spec["parents"].as_array().cloned().unwrap_or_default(),
            author: spec["author"].clone(),
            committer: spec["committer"].clone(),
            message: spec["message"].clone(),
            trigger: spec["trigger"].clone(),
            requested_by: spec["requestedBy"].clone(),
            reason: spec["reason"].clone(),
            rollback_from: spec["rollbackFrom"].clone(),
            result: status["result"].clone(),
            health: status["health"].clone(),
            started: status["started"].clone(),
            finished: status["finished"].clone(),
            health_changed: status["healthChanged"].clone(),
            changes,
            errors: status["errors"].as_array().cloned().unwrap_or_default(),
        }
    }

    /// A field as text ("" when absent).
    pub fn text(value: &Value) -> &str {
        value.as_str().unwrap_or_default()
    }

    /// Whether the attempt applied its commit.
    pub fn applied(&self) -> bool {
        self.result == "Applied"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_revision_flattens_with_every_key() {
        let r = AuditRecord::of(&json!({
            "metadata": {"name": "demo-000001"},
            "spec": {"source": "demo", "commit": "abc", "trigger": "watch"},
            "status": {"result": "Applied", "changes": [
                {"action": "Create", "object": {"apiVersion": "v1", "kind": "Namespace", "name": "demo"}, "diff": "+x"}
            ]}
        }));
        assert!(r.applied());
        assert_eq!(r.changes[0].namespace, "");
        let json = serde_json::to_value(&r).expect("serialises");
        assert_eq!(json["requestedBy"], Value::Null);
        assert_eq!(json["changes"][0]["apiVersion"], "v1");
        assert_eq!(json.as_object().map(|o| o.len()), Some(18));
    }
}
