//! ResourceQuota accounting, shared by the apiserver's admission and the quota controller:
//! which object a quota's `spec.hard` key counts ([`source`]), what one object uses
//! ([`usage`]), whether it still counts (a pod only until it finishes), and the hard limits a
//! create would pass.
//!
//! The keys are Kubernetes': object counts `count/<resource>[.<group>]` for any namespaced
//! resource and the older names `pods`, `services`, `configmaps`, `secrets`,
//! `persistentvolumeclaims`, `replicationcontrollers`, `resourcequotas`,
//! `services.nodeports`, `services.loadbalancers`; compute `requests.<name>` and
//! `limits.<name>` summed over a pod's containers (or an init container's if larger), with
//! `cpu`, `memory` and `ephemeral-storage` short for their requests; storage
//! `requests.storage` and per class `<class>.storageclass.storage.k8s.io/requests.storage` and
//! `.../persistentvolumeclaims`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::quantity::Quantity;

/// What one object, or a namespace's objects, use: hard-limit key to amount.
pub type Usage = BTreeMap<String, Quantity>;

/// The resources whose bare name is short for a pod's requests of it.
const REQUEST_SHORT_NAMES: &[&str] = &["cpu", "memory", "ephemeral-storage"];

/// The core resources whose plain name is their object count.
const COUNTED_BY_NAME: &[&str] = &[
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// The suffix of per-StorageClass keys.
const STORAGE_CLASS: &str = ".storageclass.storage.k8s.io/";

/// The objects a hard-limit key counts, as (API group, resource), or `None` for a key this
/// server does not track (it is left out of `status.used` and never refuses a create).
pub fn source(key: &str) -> Option<(&str, &str)> {
    if let Some(counted) = key.strip_prefix("count/") {
        return match counted.split_once('.') {
            Some((resource, group)) if !resource.is_empty() && !group.is_empty() => {
                Some((group, resource))
            }
            Some(_) => None,
            None if counted.is_empty() => None,
            None => Some(("", counted)),
        };
    }
    if COUNTED_BY_NAME.contains(&key) {
        return Some(("", key));
    }
    if key.contains(STORAGE_CLASS) || key == "requests.storage" {
        return Some(("", "persistentvolumeclaims"));
    }
    if key == "services.nodeports" || key == "services.loadbalancers" {
        return Some(("", "services"));
    }
    if REQUEST_SHORT_NAMES.contains(&key)
        || key.strip_prefix("requests.").is_some_and(|r| !r.is_empty())
        || key.strip_prefix("limits.").is_some_and(|r| !r.is_empty())
    {
        return Some(("", "pods"));
    }
    None
}

/// Whether `object` of `resource` counts against quota: every object does, except a pod
/// that has finished (Succeeded or Failed).
pub fn counts(resource: &str, object: &Value) -> bool {
    resource != "pods"
        || !matches!(
            object["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        )
}

fn one() -> Quantity {
    Quantity::from_units(1)
}

/// What `object`, of `resource` in API group `group`, uses of every key that counts it.
pub fn usage(group: &str, resource: &str, object: &Value) -> Usage {
    let mut usage = Usage::new();
    let count = if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    };
    usage.insert(count, one());
    if !group.is_empty() {
        return usage;
    }
    if COUNTED_BY_NAME.contains(&resource) {
        usage.insert(resource.to_owned(), one());
    }
    match resource {
        "pods" => pod_compute(&object["spec"], &mut usage),
        "services" => {
            let spec = &object["spec"];
            let kind = spec["type"].as_str().unwrap_or("ClusterIP");
            if kind == "LoadBalancer" {
                usage.insert("services.loadbalancers".into(), one());
            }
            if matches!(kind, "NodePort" | "LoadBalancer") {
                let ports = spec["ports"].as_array().map_or(0, Vec::len);
                usage.insert(
                    "services.nodeports".into(),
                    Quantity::from_units(ports as i64),
                );
            }
        }
        "persistentvolumeclaims" => {
            let storage = Quantity::from_value(&object["spec"]["resources"]["requests"]["storage"])
                .unwrap_or_default();
            usage.insert("requests.storage".into(), storage);
            if let Some(class) = object["spec"]["storageClassName"].as_str() {
                usage.insert(format!("{class}{STORAGE_CLASS}requests.storage"), storage);
                usage.insert(
                    format!("{class}{STORAGE_CLASS}persistentvolumeclaims"),
                    one(),
                );
            }
        }
        _ => {}
    }
    usage
}

/// Every resource name a container of `spec` requests or limits.
fn resource_names(spec: &Value) -> std::collections::BTreeSet<&str> {
    let mut names = std::collections::BTreeSet::new();
    for list in ["containers", "initContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for section in ["requests", "limits"] {
                if let Some(map) = c["resources"][section].as_object() {
                    names.extend(map.keys().map(String::as_str));
                }
            }
        }
    }
    names
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

/// A pod's compute usage: requests and limits of every resource its containers name (cpu
/// and memory always), the larger of the containers' sum and the largest init container.
fn pod_compute(spec: &Value, usage: &mut Usage) {
    let mut names = resource_names(spec);
    names.extend(["cpu", "memory"]);
    for resource in names {
        for section in ["requests", "limits"] {
            let sum = container_sum(&spec["containers"], section, resource);
            let init = container_max(&spec["initContainers"], section, resource);
            let value = sum.max(init);
            if section == "requests" && REQUEST_SHORT_NAMES.contains(&resource) {
                usage.insert(resource.to_owned(), value);
            }
            usage.insert(format!("{section}.{resource}"), value);
        }
    }
}

/// Whether `pod` is of the BestEffort QoS class: no container asks for or limits cpu or memory.
fn best_effort(pod: &Value) -> bool {
    ["containers", "initContainers"].iter().all(|list| {
        pod["spec"][*list]
            .as_array()
            .into_iter()
            .flatten()
            .all(|c| {
                ["requests", "limits"].iter().all(|section| {
                    let r = &c["resources"][*section];
                    r["cpu"].is_null() && r["memory"].is_null()
                })
            })
    })
}

/// Whether `pod` names other namespaces in a pod (anti-)affinity term.
fn cross_namespace_affinity(pod: &Value) -> bool {
    let affinity = &pod["spec"]["affinity"];
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let rules = &affinity[*kind];
        let required = rules["requiredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten();
        let preferred = rules["preferredDuringSchedulingIgnoredDuringExecution"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|weighted| &weighted["podAffinityTerm"]);
        required
            .chain(preferred)
            .any(|term| !term["namespaces"].is_null() || !term["namespaceSelector"].is_null())
    })
}

/// Whether `pod` is in the scope `name` (`Terminating`, `NotTerminating`, `BestEffort`,
/// `NotBestEffort`, `PriorityClass`: has one, `CrossNamespacePodAffinity`).
fn pod_in_scope(name: &str, pod: &Value) -> bool {
    match name {
        "Terminating" => !pod["spec"]["activeDeadlineSeconds"].is_null(),
        "NotTerminating" => pod["spec"]["activeDeadlineSeconds"].is_null(),
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "PriorityClass" => pod["spec"]["priorityClassName"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        _ => false,
    }
}

/// Whether a quota with `spec` tracks `object` of `resource`: every object when the quota has
/// no `scopes` and no `scopeSelector`; otherwise only pods in every scope listed and matching
/// every `scopeSelector` expression (`PriorityClass` with `In`/`NotIn` compares the pod's
/// `priorityClassName` to the values; `Exists`/`DoesNotExist` ask whether it is in the scope).
pub fn in_scope(spec: &Value, resource: &str, object: &Value) -> bool {
    let scopes = spec["scopes"].as_array().filter(|s| !s.is_empty());
    let expressions = spec["scopeSelector"]["matchExpressions"]
        .as_array()
        .filter(|e| !e.is_empty());
    if scopes.is_none() && expressions.is_none() {
        return true;
    }
    if resource != "pods" {
        return false;
    }
    let scoped = scopes.into_iter().flatten().all(|scope| {
        scope
            .as_str()
            .is_some_and(|name| pod_in_scope(name, object))
    });
    scoped
        && expressions.into_iter().flatten().all(|e| {
            let name = e["scopeName"].as_str().unwrap_or_default();
            let in_scope = pod_in_scope(name, object);
            let values = e["values"].as_array();
            let listed = || {
                let value = if name == "PriorityClass" {
                    object["spec"]["priorityClassName"]
                        .as_str()
                        .unwrap_or_default()
                } else {
                    ""
                };
                values
                    .into_iter()
                    .flatten()
                    .any(|v| v.as_str() == Some(value))
            };
            match e["operator"].as_str() {
                Some("Exists") => in_scope,
                Some("DoesNotExist") => !in_scope,
                Some("In") => in_scope && listed(),
                Some("NotIn") => !(in_scope && listed()),
                _ => false,
            }
        })
}

/// The sum of the usage of these objects of `resource` in `group` (finished pods left out).
pub fn total<'a>(
    group: &str,
    resource: &str,
    objects: impl IntoIterator<Item = &'a Value>,
) -> Usage {
    let mut total = Usage::new();
    for object in objects.into_iter().filter(|o| counts(resource, o)) {
        for (k, v) in usage(group, resource, object) {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

/// A quota's `status.used` read back (entries that are not quantities are skipped).
pub fn parse_used(used: &Value) -> Usage {
    used.as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), Quantity::from_value(v).ok()?)))
        .collect()
}

/// Whether a quota with `hard` limits anything `requested` asks for.
pub fn limits_any(hard: &Value, requested: &Usage) -> bool {
    requested
        .iter()
        .any(|(k, v)| !v.is_zero() && !hard[k.as_str()].is_null())
}

/// A limit a request passes: the resource, what was asked, what was used, the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded {
    /// `pods`, `requests.cpu`, `count/configmaps`, ...
    pub resource: String,
    /// What the new object asks.
    pub requested: Quantity,
    /// What is used already.
    pub used: Quantity,
    /// The hard limit.
    pub limited: Quantity,
}

/// The limits of `hard` (a quota's `spec.hard`) that `used` plus `requested` would pass, in
/// key order.
pub fn exceeded(hard: &Value, used: &Usage, requested: &Usage) -> Vec<Exceeded> {
    let mut out = Vec::new();
    for (resource, asked) in requested {
        if asked.is_zero() {
            continue;
        }
        let Ok(limit) = Quantity::from_value(&hard[resource.as_str()]) else {
            continue;
        };
        let now = used.get(resource).copied().unwrap_or_default();
        if now + *asked > limit {
            out.push(Exceeded {
                resource: resource.clone(),
                requested: *asked,
                used: now,
                limited: limit,
            });
        }
    }
    out
}

/// `status.used` for a quota with `hard`: every key it limits that this server tracks.
pub fn used_status(hard: &Value, used: &Usage) -> Value {
    let mut out = serde_json::Map::new();
    for key in hard.as_object().into_iter().flatten().map(|(k, _)| k) {
        if source(key).is_some() {
            let value = used.get(key).copied().unwrap_or_default();
            out.insert(key.clone(), Value::String(value.to_string()));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scoped_quotas_track_only_pods_in_their_scopes() {
        let best = json!({"spec": {"containers": [{"name": "c"}]}});
        let burst = json!({"spec": {"activeDeadlineSeconds": 30, "priorityClassName": "high",
            "containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        let unscoped = json!({"hard": {"pods": "1"}});
        assert!(in_scope(&unscoped, "configmaps", &json!({})));
        let be = json!({"scopes": ["BestEffort"]});
        assert!(in_scope(&be, "pods", &best));
        assert!(!in_scope(&be, "pods", &burst));
        assert!(
            !in_scope(&be, "configmaps", &json!({})),
            "scopes track pods only"
        );
        let term = json!({"scopes": ["Terminating", "NotBestEffort"]});
        assert!(in_scope(&term, "pods", &burst));
        assert!(!in_scope(&term, "pods", &best));
        let high = json!({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}});
        assert!(in_scope(&high, "pods", &burst));
        assert!(!in_scope(&high, "pods", &best));
        let not_high = json!({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "NotIn", "values": ["high"]}]}});
        assert!(!in_scope(&not_high, "pods", &burst));
        assert!(in_scope(&not_high, "pods", &best));
        let none = json!({"scopeSelector": {"matchExpressions": [
            {"scopeName": "PriorityClass", "operator": "DoesNotExist"}]}});
        assert!(in_scope(&none, "pods", &best));
        assert!(!in_scope(&none, "pods", &burst));
        let cross = json!({"spec": {"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{"namespaces": ["other"], "topologyKey": "k"}]}}}});
        assert!(in_scope(
            &json!({"scopes": ["CrossNamespacePodAffinity"]}),
            "pods",
            &cross
        ));
        assert!(!in_scope(
            &json!({"scopes": ["CrossNamespacePodAffinity"]}),
            "pods",
            &best
        ));
    }

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).expect("quantity")
    }

    fn pod(cpu: &str, mem: &str, phase: &str) -> Value {
        json!({"spec": {"containers": [
            {"resources": {"requests": {"cpu": cpu, "memory": mem}, "limits": {"cpu": "1"}}},
            {"resources": {"requests": {"cpu": cpu, "nvidia.com/gpu": "1"}}}
        ], "initContainers": [{"resources": {"requests": {"memory": "1Gi"}}}]},
        "status": {"phase": phase}})
    }

    #[test]
    fn usage_sums_containers_and_counts_live_pods() {
        let u = usage("", "pods", &pod("250m", "64Mi", "Running"));
        assert_eq!(u["requests.cpu"], q("500m"));
        assert_eq!(u["cpu"], q("500m"));
        assert_eq!(
            u["requests.memory"],
            q("1Gi"),
            "the init container is larger"
        );
        assert_eq!(u["limits.cpu"], q("1"));
        assert_eq!(u["requests.nvidia.com/gpu"], q("1"));
        assert_eq!(u["pods"], q("1"));
        assert_eq!(u["count/pods"], q("1"));
        let pods = [
            pod("250m", "64Mi", "Running"),
            pod("250m", "64Mi", "Succeeded"),
        ];
        let t = total("", "pods", pods.iter());
        assert_eq!(t["pods"], q("1"), "a finished pod does not count");
    }

    #[test]
    fn limits_are_checked_per_resource() {
        let hard = json!({"pods": "2", "requests.cpu": "1", "configmaps": "3", "foo.bar/baz": "1"});
        let used = total(
            "",
            "pods",
            [
                pod("250m", "64Mi", "Running"),
                pod("250m", "64Mi", "Running"),
            ]
            .iter(),
        );
        let new = usage("", "pods", &pod("100m", "1Mi", "Pending"));
        let over = exceeded(&hard, &used, &new);
        let names: Vec<_> = over.iter().map(|e| e.resource.as_str()).collect();
        assert_eq!(names, ["pods", "requests.cpu"], "{over:?}");
        assert_eq!(over[0].used.to_string(), "2");
        let status = used_status(&hard, &used);
        assert_eq!(
            status,
            json!({"pods": "2", "requests.cpu": "1", "configmaps": "0"}),
            "an untracked key is left out"
        );
    }

    #[test]
    fn objects_are_counted_by_resource_and_group() {
        let cm = usage("", "configmaps", &json!({"data": {}}));
        assert_eq!(
            cm.keys().collect::<Vec<_>>(),
            ["configmaps", "count/configmaps"]
        );
        let deploy = usage("apps", "deployments", &json!({}));
        assert_eq!(
            deploy.keys().collect::<Vec<_>>(),
            ["count/deployments.apps"]
        );
        let hard = json!({"count/deployments.apps": "1", "configmaps": "5"});
        assert!(limits_any(&hard, &deploy));
        assert!(!limits_any(&json!({"secrets": "1"}), &deploy));
        let used = total("apps", "deployments", [json!({})].iter());
        let over = exceeded(&hard, &used, &deploy);
        assert_eq!(over.len(), 1);
        assert_eq!(over[0].resource, "count/deployments.apps");
        assert_eq!(
            source("count/deployments.apps"),
            Some(("apps", "deployments"))
        );
        assert_eq!(
            source("count/widgets.example.com"),
            Some(("example.com", "widgets"))
        );
        assert_eq!(source("count/secrets"), Some(("", "secrets")));
        assert_eq!(source("count/"), None);
        assert_eq!(
            source("requests.storage"),
            Some(("", "persistentvolumeclaims"))
        );
        assert_eq!(source("limits.memory"), Some(("", "pods")));
        assert_eq!(source("services.nodeports"), Some(("", "services")));
        assert_eq!(source("bogus"), None);
    }

    #[test]
    fn services_and_claims_use_ports_and_storage() {
        let svc = usage(
            "",
            "services",
            &json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}),
        );
        assert_eq!(svc["services.loadbalancers"], q("1"));
        assert_eq!(svc["services.nodeports"], q("2"));
        let plain = usage("", "services", &json!({"spec": {"ports": [{"port": 80}]}}));
        assert!(!plain.contains_key("services.nodeports"));
        let pvc = usage(
            "",
            "persistentvolumeclaims",
            &json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}}),
        );
        assert_eq!(pvc["requests.storage"], q("5Gi"));
        assert_eq!(
            pvc["fast.storageclass.storage.k8s.io/requests.storage"],
            q("5Gi")
        );
        assert_eq!(
            pvc["fast.storageclass.storage.k8s.io/persistentvolumeclaims"],
            q("1")
        );
        assert_eq!(pvc["persistentvolumeclaims"], q("1"));
        let used = parse_used(&json!({"requests.storage": "3Gi", "odd": 1.5, "bad": "x!"}));
        assert_eq!(used.len(), 2, "{used:?}");
    }
}
