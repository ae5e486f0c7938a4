//! Owner references and claiming, as kube-controller-manager's ControllerRefManager does it:
//! an owner's children are the objects whose controller reference names its uid and whose
//! labels still match its selector; an orphan that matches is adopted, a child that stopped
//! matching is released. Adoption and release are patches carrying the child's
//! resourceVersion, so a child changed meanwhile is looked at again rather than overwritten.

use std::sync::Arc;

use ferry_schema::selector::LabelSelector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::error::ControllerError;

/// The reference a controller puts on the children it creates or adopts.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The object's controller reference, if it has one.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// `namespace/name` of an object.
pub fn key_of<K: Resource>(object: &K) -> String {
    format!(
        "{}/{}",
        object.meta().namespace.as_deref().unwrap_or_default(),
        object.meta().name.as_deref().unwrap_or_default()
    )
}

/// What claiming found among the candidates.
#[derive(Debug)]
pub struct Claim<C> {
    /// Children the owner controls and that match its selector.
    pub owned: Vec<Arc<C>>,
    /// Orphans that match: adopt them.
    pub adopt: Vec<Arc<C>>,
    /// Children that no longer match: release them.
    pub release: Vec<Arc<C>>,
}

/// Sorts `candidates` (objects of the owner's namespace) for `owner`.
/// An owner being deleted neither adopts nor releases.
pub fn claim<K: Resource, C: Resource>(
    owner: &K,
    selector: &LabelSelector,
    candidates: impl IntoIterator<Item = Arc<C>>,
) -> Claim<C> {
    let uid = owner.meta().uid.as_deref().unwrap_or_default();
    let deleting = owner.meta().deletion_timestamp.is_some();
    let mut claim = Claim {
        owned: Vec::new(),
        adopt: Vec::new(),
        release: Vec::new(),
    };
    for child in candidates {
        let matches = selector.matches_labels(child.labels());
        match controller_of(child.meta()) {
            Some(r) if r.uid == uid => {
                if matches || deleting {
                    claim.owned.push(child);
                } else {
                    claim.release.push(child);
                }
            }
            Some(_) => {}
            None => {
                if matches && !deleting && child.meta().deletion_timestamp.is_none() {
                    claim.adopt.push(child);
                }
            }
        }
    }
    claim
}

/// Adopts `child`: adds the owner's controller reference. Answers whether it took (false when
/// the child changed or went away meanwhile).
pub async fn adopt<C>(
    api: &Api<C>,
    child: &C,
    reference: &OwnerReference,
) -> Result<bool, ControllerError>
where
    C: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut refs = child.meta().owner_references.clone().unwrap_or_default();
    refs.push(reference.clone());
    patch_refs(api, child, refs, "adopt").await
}

/// Releases `child`: removes the owner's reference.
pub async fn release<C>(api: &Api<C>, child: &C, owner_uid: &str) -> Result<bool, ControllerError>
where
    C: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let refs: Vec<OwnerReference> = child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .filter(|r| r.uid != owner_uid)
        .cloned()
        .collect();
    patch_refs(api, child, refs, "release").await
}

/// Claims `owner`'s children among `candidates` (objects of its namespace) and acts on the
/// claim: adopts the matching orphans (in parallel) and releases the children that stopped
/// matching; answers the children it controls afterwards.
pub async fn claim_and_settle<K, C>(
    api: &Api<C>,
    owner: &K,
    selector: &LabelSelector,
    candidates: impl IntoIterator<Item = Arc<C>>,
) -> Result<Vec<Arc<C>>, ControllerError>
where
    K: Resource<DynamicType = ()>,
    C: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let claim = claim(owner, selector, candidates);
    let reference = controller_ref(owner);
    let mut owned = claim.owned;
    let adopted =
        futures::future::join_all(claim.adopt.iter().map(|c| adopt(api, c, &reference))).await;
    for (child, took) in claim.adopt.into_iter().zip(adopted) {
        if took? {
            owned.push(child);
        }
    }
    for child in &claim.release {
        release(api, child, &reference.uid).await?;
    }
    Ok(owned)
}

async fn patch_refs<C>(
    api: &Api<C>,
    child: &C,
    refs: Vec<OwnerReference>,
    verb: &'static str,
) -> Result<bool, ControllerError>
where
    C: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = child.meta().name.clone().unwrap_or_default();
    let patch = json!({"metadata": {
        "resourceVersion": child.meta().resource_version,
        "ownerReferences": refs,
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(false),
        Err(e) => Err(ControllerError::api(verb, name, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::cached_pod::CachedPod;
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use k8s_openapi::api::core::v1::Pod;

    fn pod(name: &str, app: &str, owner: Option<&str>) -> Arc<CachedPod> {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
        p.metadata.owner_references = owner.map(|uid| {
            vec![OwnerReference {
                uid: uid.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]
        });
        Arc::new(CachedPod::of(&p))
    }

    #[test]
    fn claims_adopts_and_releases() {
        let mut rs = ReplicaSet::default();
        rs.metadata.uid = Some("me".into());
        let selector = LabelSelector::parse("app=web").expect("fixture");
        let c = claim(
            &rs,
            &selector,
            [
                pod("mine", "web", Some("me")),
                pod("strayed", "db", Some("me")),
                pod("orphan", "web", None),
                pod("other", "web", Some("them")),
                pod("unrelated", "db", None),
            ],
        );
        let names = |v: &[Arc<CachedPod>]| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(names(&c.owned), ["mine"]);
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert_eq!(names(&c.release), ["strayed"]);
        assert_eq!(controller_ref(&rs).kind, "ReplicaSet");
        assert_eq!(controller_ref(&rs).api_version, "apps/v1");
    }
}
