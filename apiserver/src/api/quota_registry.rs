//! The hard-limit keys of every namespace's ResourceQuotas held in memory
//! ([`super::by_namespace`]). A create reads the quotas from storage (for their revisions) only when one of
//! its namespace limits something the new object uses, so a namespace without quotas, or
//! with quotas on other things, costs a create nothing.

use ferry_schema::quota::Usage;
use serde_json::Value;

use super::by_namespace::{ByNamespace, Kept};

/// The storage resource of ResourceQuotas.
pub const RESOURCE: &str = "resourcequotas";

/// A quota's `spec.hard` keys.
pub struct HardKeys(Vec<String>);

impl Kept for HardKeys {
    const RESOURCE: &'static str = RESOURCE;
    fn keep(object: &Value) -> Self {
        HardKeys(
            object["spec"]["hard"]
                .as_object()
                .map(|hard| hard.keys().cloned().collect())
                .unwrap_or_default(),
        )
    }
}

/// Each quota's `spec.hard` keys, by namespace, then name.
pub type QuotaLimits = ByNamespace<HardKeys>;

impl ByNamespace<HardKeys> {
    /// Whether `namespace` has a quota at all (a create in one without needs no usage).
    pub fn any_in(&self, namespace: &str) -> bool {
        self.read(namespace, |quotas| quotas.next().is_some())
    }

    /// Whether a quota of `namespace` limits something `requested` asks for.
    pub fn limits_any(&self, namespace: &str, requested: &Usage) -> bool {
        self.read(namespace, |quotas| {
            quotas.flat_map(|q| &q.0).any(|key| {
                requested
                    .get(key.as_str())
                    .is_some_and(|amount| !amount.is_zero())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_schema::quantity::Quantity;

    #[test]
    fn a_namespace_is_limited_only_by_its_quotas_keys() {
        let held = QuotaLimits::default();
        let quota = serde_json::json!({"spec": {"hard": {"count/configmaps": "2"}}});
        held.apply("a", "q", Some(&quota));
        let configmap: Usage = [("count/configmaps".to_owned(), Quantity::from_units(1))].into();
        let secret: Usage = [("count/secrets".to_owned(), Quantity::from_units(1))].into();
        assert!(held.limits_any("a", &configmap));
        assert!(!held.limits_any("a", &secret));
        assert!(!held.limits_any("b", &configmap));
        assert!(held.any_in("a") && !held.any_in("b"));
        held.apply("a", "q", None);
        assert!(!held.limits_any("a", &configmap));
    }
}
