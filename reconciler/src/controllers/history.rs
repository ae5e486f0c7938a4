//! ControllerRevisions, the template history DaemonSets and StatefulSets keep: one revision
//! per template (named `<owner>-<hash>`, the hash also labelling the pods as
//! `controller-revision-hash`), numbered in order; going back to an older template renumbers
//! its revision as the newest (as `kubectl rollout undo` expects); revisions beyond
//! `revisionHistoryLimit` that no pod uses any more are deleted.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::deployment::revision::template_hash;
use super::error::ControllerError;
use super::owner::{controller_of, controller_ref, key_of};

/// The label with a pod's (and a revision's) template hash.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// The revision of the current template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    /// Its name, `<owner>-<hash>`.
    pub name: String,
    /// The template hash.
    pub hash: String,
    /// Its number.
    pub revision: i64,
}

/// The template a revision holds.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// The revisions `owner` controls, among `all`.
pub fn owned_by<K: Resource>(
    owner: &K,
    all: Vec<Arc<ControllerRevision>>,
) -> Vec<Arc<ControllerRevision>> {
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let ns = owner.meta().namespace.clone();
    let mut owned: Vec<Arc<ControllerRevision>> = all
        .into_iter()
        .filter(|r| r.metadata.namespace == ns)
        .filter(|r| controller_of(&r.metadata).is_some_and(|c| c.uid == uid))
        .collect();
    owned.sort_by_key(|r| r.revision);
    owned
}

/// Makes sure the current template has a revision (the newest) and trims the history; `used`
/// holds the `controller-revision-hash` labels live pods carry.
pub async fn sync<K>(
    client: &kube::Client,
    owner: &K,
    template: &PodTemplateSpec,
    owned: &[Arc<ControllerRevision>],
    limit: i32,
    used: &HashSet<String>,
) -> Result<Current, ControllerError>
where
    K: Resource<DynamicType = ()>,
{
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let hash = template_hash(template, None);
    let name = format!(
        "{}-{hash}",
        owner.meta().name.as_deref().unwrap_or_default()
    );
    let newest = owned.iter().map(|r| r.revision).max().unwrap_or(0);
    let current = match owned.iter().find(|r| r.name_any() == name) {
        Some(r) if r.revision == newest => Current {
            name: name.clone(),
            hash: hash.clone(),
            revision: r.revision,
        },
        Some(_) => {
            // Back to an older template: it becomes the newest revision.
            let patch = json!({"revision": newest + 1});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| {
                    ControllerError::api("renumber", format!("ControllerRevision {ns}/{name}"), e)
                })?;
            Current {
                name: name.clone(),
                hash: hash.clone(),
                revision: newest + 1,
            }
        }
        None => {
            let mut labels: BTreeMap<String, String> = template
                .metadata
                .as_ref()
                .and_then(|m| m.labels.clone())
                .unwrap_or_default();
            labels.insert(HASH_LABEL.into(), hash.clone());
            let mut data = json!({"spec": {"template": template}});
            data["spec"]["template"]["$patch"] = json!("replace");
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    owner_references: Some(vec![controller_ref(owner)]),
                    ..ObjectMeta::default()
                },
                data: Some(RawExtension(data)),
                revision: newest + 1,
            };
            match api.create(&PostParams::default(), &revision).await {
                Ok(_) => {}
                // Made by an earlier pass whose watch event has not arrived yet.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let existing = api.get(&name).await.map_err(|e| {
                        ControllerError::api("read", format!("ControllerRevision {ns}/{name}"), e)
                    })?;
                    let ours = controller_of(&existing.metadata)
                        .is_some_and(|c| Some(&c.uid) == owner.meta().uid.as_ref());
                    if !ours {
                        return Err(ControllerError::Invalid {
                            what: format!("{} {}", K::kind(&()), key_of(owner)),
                            message: format!(
                                "ControllerRevision {name} exists and belongs to another object"
                            ),
                        });
                    }
                }
                Err(e) => {
                    return Err(ControllerError::api(
                        "create",
                        format!("ControllerRevision {ns}/{name}"),
                        e,
                    ));
                }
            }
            Current {
                name: name.clone(),
                hash: hash.clone(),
                revision: newest + 1,
            }
        }
    };
    // History: the oldest unused revisions beyond the limit go.
    let old: Vec<&Arc<ControllerRevision>> = owned
        .iter()
        .filter(|r| r.name_any() != current.name)
        // Pods name their revision by hash (DaemonSets) or by name (StatefulSets).
        .filter(|r| {
            !(r.labels().get(HASH_LABEL).is_some_and(|h| used.contains(h))
                || used.contains(&r.name_any()))
        })
        .collect();
    let extra = old.len().saturating_sub(limit.max(0) as usize);
    for r in old.into_iter().take(extra) {
        match api.delete(&r.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                return Err(ControllerError::api(
                    "delete",
                    format!("ControllerRevision {ns}/{}", r.name_any()),
                    e,
                ));
            }
        }
    }
    Ok(current)
}
