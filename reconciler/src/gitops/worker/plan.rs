//! The transaction of a commit: what changed since the applied commit, what is pruned, and the
//! audit's per-object changes; and the apiserver's refusal of it traced back to file and line.

use std::collections::{HashMap, HashSet};

use ferry_schema::ferry::{ChangeAction, ObjectChange, ObjectRef, RevisionFinding};
use serde_json::{Value, json};

use super::super::diff;
use super::super::manifest::Manifest;
use super::super::manifests::{COMMIT_ANNOTATION, Desired, ObjectId};
use super::SourceWorker;
use super::record::general;

impl SourceWorker {
    /// The transaction for `desired`: objects that changed since the applied commit (or are not
    /// live yet), and prunes of objects the commit no longer has; with the audit's per-object
    /// changes (diffs of the manifests). When `healing`, only the drifted objects, diffed
    /// against their live state.
    pub(super) fn plan(
        &self,
        desired: &Desired,
        commit: &str,
        healing: Option<&HashMap<ObjectId, Value>>,
    ) -> Plan {
        let previous: HashMap<&ObjectId, &Manifest> = self
            .state
            .applied_desired
            .iter()
            .flat_map(|d| d.objects.iter().map(|o| (&o.id, &o.object)))
            .collect();
        let mut plan = Plan::default();
        for o in &desired.objects {
            let before = previous.get(&o.id).copied();
            let live = self.state.inventory.contains(&o.id);
            let (before, wanted) = match healing {
                Some(drifted) => match drifted.get(&o.id) {
                    Some(now) => (Some(now.clone()).filter(|v| !v.is_null()), true),
                    None => (None, false),
                },
                None => {
                    let same = before.is_some_and(|b| *b == o.object);
                    let wanted = !(same && live);
                    // Parsed only for the objects the commit applies.
                    (before.filter(|_| wanted).map(Manifest::value), wanted)
                }
            };
            if !wanted {
                continue;
            }
            let object = o.object.value();
            let mut applied = object.clone();
            applied["metadata"]["annotations"][COMMIT_ANNOTATION] = json!(commit);
            plan.operations.push(json!({"apply": applied}));
            plan.sources
                .push(Some((o.file.clone(), o.line, o.id.to_string())));
            let exists = live || (healing.is_some() && before.is_some());
            plan.changes.push(change(
                &o.id,
                if exists {
                    ChangeAction::Update
                } else {
                    ChangeAction::Create
                },
                before.as_ref(),
                Some(&object),
            ));
        }
        if self.spec.prune.unwrap_or(true) && healing.is_none() {
            let wanted: HashSet<&ObjectId> = desired.objects.iter().map(|o| &o.id).collect();
            for id in &self.state.inventory {
                if wanted.contains(id) {
                    continue;
                }
                plan.operations.push(json!({"delete": {
                    "apiVersion": id.api_version, "kind": id.kind,
                    "namespace": id.namespace, "name": id.name,
                }}));
                plan.sources.push(None);
                plan.pruned.push(id.clone());
                let before = previous.get(id).map(|b| b.value());
                plan.changes
                    .push(change(id, ChangeAction::Delete, before.as_ref(), None));
            }
        }
        plan
    }
}

/// A transaction and where each operation came from.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) operations: Vec<Value>,
    /// Per operation: the file, line and object of an apply; `None` for a prune.
    pub(super) sources: Vec<Option<(String, usize, String)>>,
    pub(super) pruned: Vec<ObjectId>,
    /// The audit's per-object changes.
    pub(super) changes: Vec<ObjectChange>,
}

impl Plan {
    /// The apiserver's refusal as findings with file, line, object and field.
    pub(super) fn findings(
        &self,
        causes: &[(String, String)],
        message: &str,
    ) -> Vec<RevisionFinding> {
        if causes.is_empty() {
            return vec![general(message)];
        }
        causes
            .iter()
            .map(|(field, text)| {
                let index = field
                    .strip_prefix("operations[")
                    .and_then(|r| r.split_once(']'))
                    .and_then(|(i, rest)| {
                        Some((i.parse::<usize>().ok()?, rest.trim_start_matches('.')))
                    });
                match index.and_then(|(i, rest)| Some((self.sources.get(i)?.as_ref()?, rest))) {
                    Some(((file, line, object), rest)) => RevisionFinding {
                        file: Some(file.clone()),
                        line: Some(*line as u32),
                        column: None,
                        object: Some(object.clone()),
                        path: (!rest.is_empty()).then(|| pointer_of(rest)),
                        message: text.clone(),
                    },
                    None => general(text.clone()),
                }
            })
            .collect()
    }
}

/// One object's change for the audit, with a diff of its manifest (Secret values redacted).
fn change(
    id: &ObjectId,
    action: ChangeAction,
    before: Option<&Value>,
    after: Option<&Value>,
) -> ObjectChange {
    ObjectChange {
        action,
        object: ObjectRef {
            api_version: id.api_version.clone(),
            kind: id.kind.clone(),
            namespace: id.namespace.clone(),
            name: id.name.clone(),
        },
        diff: Some(diff::unified(&id.slashed(), before, after)),
    }
}

/// `spec.template.spec.containers[0].image` → `/spec/template/spec/containers/0/image`.
fn pointer_of(dotted: &str) -> String {
    let mut out = String::new();
    for part in dotted.split('.').filter(|p| !p.is_empty()) {
        let (name, rest) = part.split_once('[').unwrap_or((part, ""));
        if !name.is_empty() {
            out.push('/');
            out.push_str(&name.replace('~', "~0").replace('/', "~1"));
        }
        for index in rest.split('[') {
            let index = index.trim_end_matches(']');
            if !index.is_empty() {
                out.push('/');
                out.push_str(index);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_fields_become_pointers() {
        assert_eq!(
            pointer_of("spec.template.spec.containers[0].image"),
            "/spec/template/spec/containers/0/image"
        );
        assert_eq!(pointer_of("metadata.name"), "/metadata/name");
    }

    #[test]
    fn refusals_name_file_line_and_object() {
        let plan = Plan {
            operations: vec![json!({}), json!({})],
            sources: vec![
                None,
                Some(("apps/web.yaml".into(), 7, "Deployment demo/web".into())),
            ],
            pruned: Vec::new(),
            changes: Vec::new(),
        };
        let f = plan.findings(
            &[("operations[1].spec.replicas".into(), "Invalid value".into())],
            "refused",
        );
        assert_eq!(f[0].file.as_deref(), Some("apps/web.yaml"));
        assert_eq!(f[0].line, Some(7));
        assert_eq!(f[0].path.as_deref(), Some("/spec/replicas"));
        assert_eq!(f[0].object.as_deref(), Some("Deployment demo/web"));
    }
}
