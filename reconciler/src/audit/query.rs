//! Questions about the audit trail, answered by the apiserver: history (of a source, of one
//! object), one revision, the sources.

use ferry_schema::selector::REVISION_OBJECT_FIELD;
use serde_json::Value;

use super::{AuditError, AuditRecord};
use crate::gitops::cluster::{Cluster, REVISION_LABEL, sequence};

/// An object named on the command line: `KIND/NAMESPACE/NAME` or `KIND/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectQuery(String);

impl ObjectQuery {
    /// Parses `KIND/NAMESPACE/NAME` or `KIND/NAME` (the kind in any case).
    pub fn parse(text: &str) -> Result<ObjectQuery, AuditError> {
        let parts: Vec<&str> = text.split('/').collect();
        if !matches!(parts.len(), 2 | 3) || parts.iter().any(|p| p.is_empty()) {
            return Err(AuditError::ObjectName(text.to_owned()));
        }
        Ok(ObjectQuery(text.to_owned()))
    }

    /// The field selector that finds the revisions that changed it.
    pub fn field_selector(&self) -> String {
        format!("{REVISION_OBJECT_FIELD}={}", self.0)
    }
}

/// The revisions of `source` (all sources when `None`) that changed `object` (any when `None`),
/// oldest first (by start time, then sequence).
pub async fn history(
    cluster: &Cluster,
    source: Option<&str>,
    object: Option<&ObjectQuery>,
) -> Result<Vec<AuditRecord>, AuditError> {
    let labels = source
        .map(|s| format!("{REVISION_LABEL}={s}"))
        .unwrap_or_default();
    let fields = object.map(ObjectQuery::field_selector).unwrap_or_default();
    let mut revisions = cluster.revisions_selected(&labels, &fields).await?;
    revisions.sort_by_cached_key(|r| {
        (
            r["status"]["started"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            sequence(r),
        )
    });
    Ok(revisions.iter().map(AuditRecord::of).collect())
}

/// A revision by name, else the latest revision of a commit (SHA or prefix).
pub async fn find(cluster: &Cluster, what: &str) -> Result<AuditRecord, AuditError> {
    let revisions = cluster.revisions(None).await?;
    let by_name = revisions.iter().find(|r| r["metadata"]["name"] == what);
    let by_commit = || {
        revisions.iter().rev().find(|r| {
            r["spec"]["commit"]
                .as_str()
                .is_some_and(|c| !what.is_empty() && c.starts_with(what))
        })
    };
    by_name
        .or_else(by_commit)
        .map(AuditRecord::of)
        .ok_or_else(|| AuditError::NotInAudit(what.to_owned()))
}

/// The named source, or the only one.
pub async fn pick_source(cluster: &Cluster, name: Option<&str>) -> Result<String, AuditError> {
    if let Some(name) = name {
        return match cluster.source(name).await? {
            Some(_) => Ok(name.to_owned()),
            None => Err(AuditError::NoSource(name.to_owned())),
        };
    }
    let sources = cluster.sources().await?;
    let names: Vec<&str> = sources
        .iter()
        .filter_map(|s| s["metadata"]["name"].as_str())
        .collect();
    match names.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err(AuditError::NoSources),
        many => Err(AuditError::SeveralSources(many.join(", "))),
    }
}

/// Every source with its spec and status.
pub async fn sources(cluster: &Cluster) -> Result<Vec<Value>, AuditError> {
    Ok(cluster.sources().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_are_checked() {
        assert!(ObjectQuery::parse("Deployment/demo/web").is_ok());
        assert!(ObjectQuery::parse("namespace/demo").is_ok());
        for bad in ["web", "a/b/c/d", "Deployment//web", ""] {
            let err = ObjectQuery::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("KIND/NAMESPACE/NAME"), "{err}");
        }
        assert_eq!(
            ObjectQuery::parse("Deployment/demo/web")
                .expect("valid")
                .field_selector(),
            "status.changes.object=Deployment/demo/web"
        );
    }
}
