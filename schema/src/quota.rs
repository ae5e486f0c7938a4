//! ResourceQuota accounting for pods, shared by the apiserver's admission and the quota
//! controller: what one pod uses (`pods`, `count/pods`, `requests.cpu|memory` and their short
//! forms `cpu|memory`, `limits.cpu|memory`; requests are the sum over the containers, or an
//! init container's if larger), whether a pod still counts (not finished), and the first
//! hard limit a request would pass.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity::Quantity;

/// The resources a quota can limit that pods use.
pub const TRACKED: &[&str] = &[
    "pods",
    "count/pods",
    "requests.cpu",
    "requests.memory",
    "cpu",
    "memory",
    "limits.cpu",
    "limits.memory",
];

/// Whether `pod` counts against quota (it is not Succeeded or Failed).
pub fn counts(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn container_sum(containers: &Value, section: &str, resource: &str) -> Quantity {
    containers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Quantity::from_value(&c["resources"][section][resource]).ok())
        .sum()
}

fn container_max(containers: &Value, section: &str, resource: &str) -> Quantity {
    containers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Quantity::from_value(&c["resources"][section][resource]).ok())
        .max()
        .unwrap_or_default()
}

/// What `pod` uses of each tracked resource.
pub fn pod_usage(pod: &Value) -> BTreeMap<&'static str, Quantity> {
    let spec = &pod["spec"];
    let mut usage = BTreeMap::new();
    usage.insert("pods", Quantity::from_units(1));
    usage.insert("count/pods", Quantity::from_units(1));
    for (section, names) in [
        (
            "requests",
            [("requests.cpu", "cpu"), ("requests.memory", "memory")],
        ),
        (
            "limits",
            [("limits.cpu", "cpu"), ("limits.memory", "memory")],
        ),
    ] {
        for (name, resource) in names {
            let sum = container_sum(&spec["containers"], section, resource);
            let init = container_max(&spec["initContainers"], section, resource);
            let value = sum.max(init);
            if section == "requests" {
                usage.insert(resource_alias(resource), value);
            }
            usage.insert(name, value);
        }
    }
    usage
}

fn resource_alias(resource: &str) -> &'static str {
    if resource == "cpu" { "cpu" } else { "memory" }
}

/// The sum of the usage of these pods.
pub fn total<'a>(pods: impl IntoIterator<Item = &'a Value>) -> BTreeMap<&'static str, Quantity> {
    let mut total: BTreeMap<&'static str, Quantity> = BTreeMap::new();
    for pod in pods.into_iter().filter(|p| counts(p)) {
        for (k, v) in pod_usage(pod) {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

/// A limit a request passes: the resource, what was asked, what was used, the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// `pods`, `requests.cpu`, ...
    pub resource: String,
    /// What the new pod asks.
    pub requested: Quantity,
    /// What is used already.
    pub used: Quantity,
    /// The hard limit.
    pub limited: Quantity,
}

/// The limits of `hard` (a quota's `spec.hard`) that `used` plus `requested` would pass.
pub fn exceeded(
    hard: &Value,
    used: &BTreeMap<&'static str, Quantity>,
    requested: &BTreeMap<&'static str, Quantity>,
) -> Vec<Exceeded> {
    let mut out = Vec::new();
    for resource in TRACKED {
        let Ok(limit) = Quantity::from_value(&hard[*resource]) else {
            continue;
        };
        let asked = requested.get(resource).copied().unwrap_or_default();
        if asked.is_zero() {
            continue;
        }
        let now = used.get(resource).copied().unwrap_or_default();
        if now + asked > limit {
            out.push(Exceeded {
                resource: (*resource).to_owned(),
                requested: asked,
                used: now,
                limited: limit,
            });
        }
    }
    out
}

/// `status.used` for a quota with `hard`: the tracked resources it limits.
pub fn used_status(hard: &Value, used: &BTreeMap<&'static str, Quantity>) -> Value {
    let mut out = serde_json::Map::new();
    for resource in TRACKED {
        if !hard[*resource].is_null() {
            let value = used.get(resource).copied().unwrap_or_default();
            out.insert((*resource).to_owned(), Value::String(value.to_string()));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(cpu: &str, mem: &str, phase: &str) -> Value {
        json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": cpu}}}
        ], "initContainers": [{"resources": {"requests": {"memory": "1Gi"}}}]},
        "status": {"phase": phase}})
    }

    #[test]
    fn usage_sums_containers_and_counts_live_pods() {
        let u = pod_usage(&pod("250m", "64Mi", "Running"));
        assert_eq!(u["requests.cpu"], Quantity::parse("500m").expect("q"));
        assert_eq!(u["cpu"], Quantity::parse("500m").expect("q"));
        assert_eq!(
            u["requests.memory"],
            Quantity::parse("1Gi").expect("q"),
            "the init container is larger"
        );
        assert_eq!(u["limits.cpu"], Quantity::parse("1").expect("q"));
        let pods = [
            pod("250m", "64Mi", "Running"),
            pod("250m", "64Mi", "Succeeded"),
        ];
        let t = total(pods.iter());
        assert_eq!(t["pods"], Quantity::from_units(1));
    }

    #[test]
    fn limits_are_checked_per_resource() {
        let hard = json!({"pods": "2", "requests.cpu": "1", "configmaps": "3"});
        let used = total(
            [
                pod("250m", "64Mi", "Running"),
                pod("250m", "64Mi", "Running"),
            ]
            .iter(),
        );
        let new = pod_usage(&pod("100m", "1Mi", "Pending"));
        let over = exceeded(&hard, &used, &new);
        assert_eq!(over.len(), 2, "{over:?}");
        assert_eq!(over[0].resource, "pods");
        assert_eq!(over[0].used.to_string(), "2");
        assert_eq!(over[1].resource, "requests.cpu");
        let status = used_status(&hard, &used);
        assert_eq!(status, json!({"pods": "2", "requests.cpu": "1"}));
    }
}
