//! The garbage collector's picture of ownership: every object it watches (metadata only), by
//! uid, with its owners, and the reverse index from an owner's uid to its dependents. Changes
//! to the picture answer the work they make: a vanished owner's dependents to look at, an
//! owner deleted in the foreground or with orphans to finish.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::discovery::ApiResource;

/// The finalizer of a foreground deletion: the owner goes after its dependents.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion: the dependents lose their reference and stay.
pub const ORPHAN: &str = "orphan";

/// One watched object.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Its kind's resource.
    pub resource: Arc<ApiResource>,
    /// Namespace (None for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// resourceVersion, as the precondition of a patch.
    pub resource_version: Option<String>,
    /// Its owners.
    pub owners: Vec<OwnerReference>,
    /// Has a deletionTimestamp.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

impl Node {
    /// Being deleted in the foreground (waits for its dependents).
    pub fn foreground(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }

    /// Being deleted, orphaning its dependents.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == ORPHAN)
    }
}

/// Work for the collector, by uid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Work {
    /// Look at a dependent's owners: delete it if none is left, drop dangling references.
    Dependent(String),
    /// An owner deleted in the foreground: delete its dependents, then release it.
    Foreground(String),
    /// An owner deleted with orphans: free its dependents, then release it.
    Orphan(String),
}

/// Ownership as last seen.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, HashSet<String>>,
}

impl Graph {
    /// The object with this uid.
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// The uids of the objects that name `uid` as an owner.
    pub fn dependents_of(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The uids of the objects of one resource (`group`, `plural`).
    pub fn uids_of(&self, group: &str, plural: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.resource.group == group && n.resource.plural == plural)
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    /// How many objects are watched.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Nothing watched.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// An object was added or changed.
    pub fn upsert(&mut self, uid: String, node: Node) -> Vec<Work> {
        let mut work = Vec::new();
        if let Some(old) = self.nodes.get(&uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(&uid);
                    if d.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
            }
        }
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(uid.clone());
        }
        let owner_gone_or_going = node
            .owners
            .iter()
            .any(|o| self.nodes.get(&o.uid).is_none_or(Node::foreground));
        if owner_gone_or_going {
            work.push(Work::Dependent(uid.clone()));
        }
        if node.foreground() {
            work.push(Work::Foreground(uid.clone()));
        }
        if node.orphaning() {
            work.push(Work::Orphan(uid.clone()));
        }
        self.nodes.insert(uid, node);
        work
    }

    /// An object was deleted: its dependents are looked at, and owners waiting in the
    /// foreground for it are looked at again.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let mut work = Vec::new();
        if let Some(old) = self.nodes.remove(uid) {
            for o in &old.owners {
                if let Some(d) = self.dependents.get_mut(&o.uid) {
                    d.remove(uid);
                    if d.is_empty() {
                        self.dependents.remove(&o.uid);
                    }
                }
                if self.nodes.get(&o.uid).is_some_and(Node::foreground) {
                    work.push(Work::Foreground(o.uid.clone()));
                }
            }
        }
        for d in self.dependents_of(uid) {
            work.push(Work::Dependent(d));
        }
        work
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource() -> Arc<ApiResource> {
        Arc::new(ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            plural: "pods".into(),
        })
    }

    fn node(name: &str, owners: &[&str]) -> Node {
        Node {
            resource: resource(),
            namespace: Some("ns".into()),
            name: name.into(),
            resource_version: Some("1".into()),
            owners: owners
                .iter()
                .map(|uid| OwnerReference {
                    uid: (*uid).into(),
                    ..OwnerReference::default()
                })
                .collect(),
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    #[test]
    fn owners_vanishing_make_work_for_their_dependents() {
        let mut g = Graph::default();
        assert!(
            g.upsert("rs".into(), node("rs", &["d"]))
                .contains(&Work::Dependent("rs".into())),
            "owner not seen yet"
        );
        assert_eq!(g.upsert("d".into(), node("d", &[])), vec![]);
        assert_eq!(g.upsert("p1".into(), node("p1", &["rs"])), vec![]);
        assert_eq!(g.upsert("p2".into(), node("p2", &["rs"])), vec![]);
        let mut work = g.remove("rs");
        work.sort();
        assert_eq!(
            work,
            vec![Work::Dependent("p1".into()), Work::Dependent("p2".into())]
        );
        // A dependent that changes owners moves in the index.
        g.upsert("p1".into(), node("p1", &["d"]));
        assert_eq!(g.dependents_of("d"), vec!["p1".to_owned()]);
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn foreground_and_orphan_deletions_are_finished() {
        let mut g = Graph::default();
        g.upsert("rs".into(), node("rs", &[]));
        g.upsert("p".into(), node("p", &["rs"]));
        let mut going = node("rs", &[]);
        going.deleting = true;
        going.finalizers = vec![FOREGROUND.into()];
        assert_eq!(
            g.upsert("rs".into(), going),
            vec![Work::Foreground("rs".into())]
        );
        // The dependent's next change sees its owner going.
        assert_eq!(
            g.upsert("p".into(), node("p", &["rs"])),
            vec![Work::Dependent("p".into())]
        );
        // Its deletion wakes the owner.
        assert_eq!(g.remove("p"), vec![Work::Foreground("rs".into())]);
        let mut orphaning = node("x", &[]);
        orphaning.deleting = true;
        orphaning.finalizers = vec![ORPHAN.into()];
        assert_eq!(
            g.upsert("x".into(), orphaning),
            vec![Work::Orphan("x".into())]
        );
    }
}
