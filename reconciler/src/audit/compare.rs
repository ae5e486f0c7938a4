//! `ferry diff`: a commit's manifests against the live objects (cut down to the fields the
//! manifests set, plus what the commit would prune), or two commits against each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use ferry_schema::ferry::{RevisionFinding, SourceSpec};
use ferry_schema::validate::{Options, Validator};
use serde_json::Value;

use super::AuditError;
use crate::gitops::cluster::Cluster;
use crate::gitops::controller::{is_remote, open_checkout};
use crate::gitops::manifests::{Desired, Loader, ObjectId};
use crate::gitops::{diff, drift};

/// What `ferry diff` reports.
#[derive(Debug, Default)]
pub struct Comparison {
    /// Findings that would make a compared commit refused: (the commit as named, finding).
    pub refusals: Vec<(String, RevisionFinding)>,
    /// One unified diff per object that differs, in object order.
    pub diffs: Vec<String>,
}

impl Comparison {
    /// Whether anything differs (`diff`'s exit code 1).
    pub fn differs(&self) -> bool {
        !self.diffs.is_empty()
    }
}

/// Compares `commit` of `source` with the live objects, or with `other` when given.
pub async fn compare(
    cluster: &Cluster,
    source: &str,
    commit: &str,
    other: Option<&str>,
) -> Result<Comparison, AuditError> {
    let object = cluster
        .source(source)
        .await?
        .ok_or_else(|| AuditError::NoSource(source.to_owned()))?;
    let spec: SourceSpec =
        serde_json::from_value(object["spec"].clone()).map_err(|e| AuditError::InvalidSource {
            source_name: source.to_owned(),
            reason: e.to_string(),
        })?;
    if is_remote(&spec.url) {
        return Err(AuditError::RemoteSource {
            source_name: source.to_owned(),
            url: spec.url,
        });
    }
    let checkout_error = |reason: String| AuditError::Checkout {
        source_name: source.to_owned(),
        reason,
    };
    let checkout =
        open_checkout(&spec, source, Path::new(".")).map_err(|e| checkout_error(e.to_string()))?;
    let validator = Validator::new(
        Options {
            strict: true,
            ..Options::default()
        },
        Vec::new(),
    );
    let mut loader = Loader::new(Arc::new(validator), source);
    let mut load = |rev: &str| -> Result<Desired, AuditError> {
        let id = checkout
            .resolve(rev)
            .map_err(|e| checkout_error(e.to_string()))?;
        let snapshot = checkout
            .snapshot(&id, &loader.known())
            .map_err(|e| checkout_error(e.to_string()))?;
        Ok(loader.load(&snapshot))
    };
    let mut out = Comparison::default();
    let first = load(commit)?;
    out.refusals.extend(
        first
            .findings
            .iter()
            .map(|f| (commit.to_owned(), f.clone())),
    );
    let wanted = |d: &Desired| -> BTreeMap<ObjectId, Value> {
        d.objects
            .iter()
            .map(|o| (o.id.clone(), o.object.value()))
            .collect()
    };
    let (before, after) = match other {
        Some(rev) => {
            let second = load(rev)?;
            out.refusals
                .extend(second.findings.iter().map(|f| (rev.to_owned(), f.clone())));
            (wanted(&first), wanted(&second))
        }
        None => {
            let mut live = BTreeMap::new();
            let ids: BTreeSet<&ObjectId> = first.objects.iter().map(|o| &o.id).collect();
            for o in &first.objects {
                if let Some(l) = cluster.get(&o.id).await? {
                    live.insert(o.id.clone(), drift::project(&o.object.value(), &l));
                }
            }
            for (id, l) in cluster.applied_by(source).await? {
                if !ids.contains(&id) {
                    live.insert(id, l);
                }
            }
            (live, wanted(&first))
        }
    };
    let ids: BTreeSet<&ObjectId> = before.keys().chain(after.keys()).collect();
    for id in ids {
        let text = diff::unified(&id.slashed(), before.get(id), after.get(id));
        if !text.is_empty() {
            out.diffs.push(text);
        }
    }
    Ok(out)
}
