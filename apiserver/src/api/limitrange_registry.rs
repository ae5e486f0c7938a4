//! The LimitRanges of every namespace held in memory for the LimitRange admission
//! ([`super::by_namespace`]), so a pod create reads no LimitRange from the database.

use serde_json::Value;

use super::by_namespace::{ByNamespace, Kept};
use super::limitrange::RESOURCE;

/// A LimitRange as stored.
pub struct HeldRange(Value);

impl Kept for HeldRange {
    const RESOURCE: &'static str = RESOURCE;
    fn keep(object: &Value) -> Self {
        HeldRange(object.clone())
    }
}

/// The LimitRanges by namespace, then name.
pub type LimitRanges = ByNamespace<HeldRange>;

impl ByNamespace<HeldRange> {
    /// The LimitRanges of `namespace`, by name.
    pub fn of(&self, namespace: &str) -> Vec<Value> {
        self.read(namespace, |ranges| ranges.map(|r| r.0.clone()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_their_namespace_and_go_when_deleted() {
        let held = LimitRanges::default();
        let range = serde_json::json!({"metadata": {"name": "r", "namespace": "a"}});
        held.apply("a", "r", Some(&range));
        assert_eq!(held.of("a"), vec![range]);
        assert!(held.of("b").is_empty());
        held.apply("a", "r", None);
        assert!(held.of("a").is_empty());
    }
}
