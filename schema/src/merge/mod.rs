//! How each field of a built-in kind merges: the one copy of Kubernetes' merge keys.
//!
//! Strategic merge patch merges a list item by item when the field's Go type carries
//! `patchStrategy:"merge"` and a `patchMergeKey` (containers by `name`, container ports by
//! `containerPort`, Service ports by `port`); server-side apply identifies list items by the
//! field's `listType=map` keys (`containerPort` *and* `protocol`) and treats `listType=set`
//! lists as sets. Those markers are what the OpenAPI spec publishes as
//! `x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`, `x-kubernetes-list-type` and
//! `x-kubernetes-list-map-keys`.
//!
//! The table in `strategy.json` is generated from them by `ops/protobuf/generate.py` (from the
//! `k8s-pb` sources, which keep the markers), and the CI checks that it is current. It is keyed
//! by type, so the same field name merges differently where Kubernetes says so: a walk starts at
//! a kind ([`TypeShape::of_kind`]) and follows fields down ([`TypeShape::field`],
//! [`FieldShape::child`]). Kinds without an entry (custom resources, `ferry.dev` kinds) have
//! atomic lists, as Kubernetes gives a custom resource without list-type markers.

mod strategic;

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

pub use strategic::strategic_merge;

/// The generated table.
#[derive(Debug, Default, Deserialize)]
struct Table {
    /// `apiVersion/Kind` → type key.
    kinds: HashMap<String, String>,
    /// Type key → JSON field name → strategy.
    types: HashMap<String, HashMap<String, FieldStrategy>>,
}

/// What the table knows of one field.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FieldStrategy {
    /// The type of the value (of each item for a list, of each value for a map).
    #[serde(rename = "type")]
    child: Option<String>,
    /// `listType`; absent for fields that are not lists.
    list: Option<ListType>,
    /// `listMapKey`s of a `listType=map` list.
    #[serde(default)]
    keys: Vec<String>,
    /// `patchMergeKey`.
    merge_key: Option<String>,
    /// `patchStrategy` (`merge`, `replace`, `retainKeys`, `merge,retainKeys`).
    strategy: Option<String>,
}

/// A list's `x-kubernetes-list-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListType {
    /// Replaced as a whole.
    Atomic,
    /// Scalars, each present at most once; merged as a set.
    Set,
    /// Objects identified by their list-map keys.
    Map,
}

static TABLE: LazyLock<Table> = LazyLock::new(|| {
    // The file is generated and checked in CI; `table_parses` proves it reads.
    serde_json::from_str(include_str!("strategy.json")).unwrap_or_default()
});

/// Where a walk is in the type graph: the type of the value at hand, or unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct TypeShape(Option<&'static HashMap<String, FieldStrategy>>);

/// One field of a type, as the table knows it.
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldShape(Option<&'static FieldStrategy>);

static NO_KEYS: Vec<String> = Vec::new();

impl TypeShape {
    /// The root type of a kind (`apps/v1`, `Deployment`); unknown for kinds not in the table.
    pub fn of_kind(api_version: &str, kind: &str) -> TypeShape {
        let table: &'static Table = &TABLE;
        TypeShape(
            table
                .kinds
                .get(&format!("{api_version}/{kind}"))
                .and_then(|key| table.types.get(key)),
        )
    }

    /// A type nothing is known of: maps merge, lists are atomic.
    pub fn unknown() -> TypeShape {
        TypeShape(None)
    }

    /// Whether the type is in the table.
    pub fn is_known(self) -> bool {
        self.0.is_some()
    }

    /// A field of this type.
    pub fn field(self, name: &str) -> FieldShape {
        FieldShape(self.0.and_then(|fields| fields.get(name)))
    }
}

impl FieldShape {
    /// The type of the field's value, of each item of a list, or of each value of a map.
    pub fn child(self) -> TypeShape {
        let table: &'static Table = &TABLE;
        TypeShape(
            self.0
                .and_then(|f| f.child.as_ref())
                .and_then(|key| table.types.get(key)),
        )
    }

    /// The list type; atomic when nothing says otherwise.
    pub fn list_type(self) -> ListType {
        self.0.and_then(|f| f.list).unwrap_or(ListType::Atomic)
    }

    /// The keys that identify an item of a `listType=map` list (server-side apply).
    pub fn list_map_keys(self) -> &'static [String] {
        match self.0 {
            Some(f) if f.list == Some(ListType::Map) => &f.keys,
            _ => &NO_KEYS,
        }
    }

    /// The strategic-merge key of a list of objects, when the list merges item by item.
    pub fn patch_merge_key(self) -> Option<&'static str> {
        self.0
            .filter(|_| self.merges())
            .and_then(|f| f.merge_key.as_deref())
    }

    /// Whether strategic merge patch merges this list (by key, or as a set of scalars) instead
    /// of replacing it.
    pub fn merges(self) -> bool {
        self.0
            .and_then(|f| f.strategy.as_deref())
            .is_some_and(|s| s.split(',').any(|p| p == "merge"))
    }

    /// Whether the field's patch strategy includes `retainKeys`.
    pub fn retains_keys(self) -> bool {
        self.0
            .and_then(|f| f.strategy.as_deref())
            .is_some_and(|s| s.split(',').any(|p| p == "retainKeys"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_parses() {
        let table: Table =
            serde_json::from_str(include_str!("strategy.json")).expect("strategy.json parses");
        assert!(table.kinds.len() > 30, "{} kinds", table.kinds.len());
        assert!(table.types.len() > 100, "{} types", table.types.len());
    }

    #[test]
    fn same_field_name_merges_by_the_type_it_is_in() {
        let pod = TypeShape::of_kind("v1", "Pod");
        assert!(pod.is_known());
        let container = pod.field("spec").child().field("containers");
        assert_eq!(container.patch_merge_key(), Some("name"));
        assert_eq!(container.list_type(), ListType::Map);
        let ports = container.child().field("ports");
        assert_eq!(ports.patch_merge_key(), Some("containerPort"));
        assert_eq!(ports.list_map_keys(), ["containerPort", "protocol"]);
        let service_ports = TypeShape::of_kind("v1", "Service")
            .field("spec")
            .child()
            .field("ports");
        assert_eq!(service_ports.patch_merge_key(), Some("port"));
        // Deployment → pod template → pod spec: the walk crosses types.
        let template_containers = TypeShape::of_kind("apps/v1", "Deployment")
            .field("spec")
            .child()
            .field("template")
            .child()
            .field("spec")
            .child()
            .field("containers");
        assert_eq!(template_containers.patch_merge_key(), Some("name"));
        // Finalizers merge as a set; args are atomic.
        let meta = pod.field("metadata").child();
        assert!(meta.field("finalizers").merges());
        assert_eq!(meta.field("finalizers").patch_merge_key(), None);
        assert!(!container.child().field("args").merges());
        // The Deployment strategy keeps only the keys it names.
        assert!(
            TypeShape::of_kind("apps/v1", "Deployment")
                .field("spec")
                .child()
                .field("strategy")
                .retains_keys()
        );
        assert!(!TypeShape::of_kind("example.com/v1", "Widget").is_known());
    }
}
