//! Discovery: `/version`, the legacy documents (`/api`, `/apis`, `/api/v1`,
//! `/apis/{group}/{version}`) and aggregated discovery (`apidiscovery.k8s.io/v2`), which
//! kubectl asks for first and which answers everything in two requests.

use serde_json::{Value, json};

use super::catalog::{VERBS, groups, has_scale, has_status, kinds_in, singular};
use super::crd::{CrdRegistry, CustomKind};

/// The custom groups, each with its versions in the order the CRDs list them.
fn custom_groups(crds: &CrdRegistry) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for k in crds.all() {
        let (group, version) = (k.info.group.to_owned(), k.info.version.to_owned());
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) if !versions.contains(&version) => versions.push(version),
            Some(_) => {}
            None => out.push((group, vec![version])),
        }
    }
    out
}

fn custom_entry(group: &str, versions: &[String]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": gvs, "preferredVersion": gvs.first().cloned().unwrap_or_default()})
}

fn custom_resources(kinds: &[CustomKind]) -> Vec<Value> {
    let mut resources = Vec::new();
    for k in kinds {
        let v = &k.served;
        resources.push(json!({
            "name": v.plural, "singularName": v.singular, "namespaced": v.namespaced,
            "kind": v.kind, "verbs": VERBS, "shortNames": v.short_names, "categories": v.categories,
        }));
        if v.status {
            resources.push(json!({"name": format!("{}/status", v.plural), "singularName": "", "namespaced": v.namespaced, "kind": v.kind, "verbs": ["get", "patch", "update"]}));
        }
        if v.scale.is_some() {
            resources.push(json!({"name": format!("{}/scale", v.plural), "singularName": "", "namespaced": v.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    resources
}

fn custom_aggregated(crds: &CrdRegistry, group: &str, versions: &[String]) -> Value {
    let all = crds.all();
    let versions: Vec<Value> = versions
        .iter()
        .map(|version| {
            let resources: Vec<Value> = all
                .iter()
                .filter(|k| k.info.group == group && k.info.version == version)
                .map(|k| {
                    let v = &k.served;
                    let mut subresources = Vec::new();
                    if v.status {
                        subresources.push(json!({"subresource": "status", "responseKind": {"group": group, "version": version, "kind": v.kind}, "verbs": ["get", "patch", "update"]}));
                    }
                    if v.scale.is_some() {
                        subresources.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
                    }
                    json!({
                        "resource": v.plural,
                        "responseKind": {"group": group, "version": version, "kind": v.kind},
                        "scope": if v.namespaced { "Namespaced" } else { "Cluster" },
                        "singularResource": v.singular,
                        "verbs": VERBS,
                        "shortNames": v.short_names,
                        "categories": v.categories,
                        "subresources": subresources,
                    })
                })
                .collect();
            json!({"version": version, "resources": resources, "freshness": "Current"})
        })
        .collect();
    json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": versions})
}

/// The Accept media type of aggregated discovery.
pub const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Does the request's Accept header ask for aggregated discovery?
pub fn wants_aggregated(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=APIGroupDiscoveryList") && first.contains("v=v2"))
}

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": concat!("v1.33.0-ferry.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": "linux/amd64",
    })
}

/// `/api`, legacy.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
    })
}

fn group_entry(group: &str, version: &str) -> Value {
    let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
    json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
}

/// `/apis`, legacy.
pub fn group_list(crds: &CrdRegistry) -> Value {
    let mut groups: Vec<Value> = groups()
        .into_iter()
        .map(|(g, v)| group_entry(g, v))
        .collect();
    groups.extend(
        custom_groups(crds)
            .iter()
            .map(|(g, versions)| custom_entry(g, versions)),
    );
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, legacy; `None` when the group is not served.
pub fn group(name: &str, crds: &CrdRegistry) -> Option<Value> {
    let built_in = groups()
        .into_iter()
        .find(|(g, _)| *g == name)
        .map(|(g, v)| group_entry(g, v));
    let custom = || {
        custom_groups(crds)
            .into_iter()
            .find(|(g, _)| g == name)
            .map(|(g, versions)| custom_entry(&g, &versions))
    };
    built_in.or_else(custom).map(|mut entry| {
        entry["kind"] = json!("APIGroup");
        entry["apiVersion"] = json!("v1");
        entry
    })
}

/// `/api/v1` or `/apis/{group}/{version}`, legacy; `None` when not served.
pub fn resource_list(group: &str, version: &str, crds: &CrdRegistry) -> Option<Value> {
    let custom: Vec<CustomKind> = crds
        .all()
        .into_iter()
        .filter(|k| k.info.group == group && k.info.version == version)
        .collect();
    let mut resources = custom_resources(&custom);
    for k in kinds_in(group, version) {
        resources.push(json!({
            "name": k.plural,
            "singularName": singular(k),
            "namespaced": k.namespaced,
            "kind": k.kind,
            "verbs": VERBS,
            "shortNames": k.short_names,
        }));
        if has_status(k) {
            resources.push(json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}));
        }
        if has_scale(k) {
            resources.push(json!({"name": format!("{}/scale", k.plural), "singularName": "", "namespaced": k.namespaced, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
        if k.kind == "Pod" {
            resources.push(json!({"name": "pods/binding", "singularName": "", "namespaced": true, "kind": "Binding", "verbs": ["create"]}));
            resources.push(json!({"name": "pods/eviction", "singularName": "", "namespaced": true, "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

fn aggregated_group(group: &str, version: &str) -> Value {
    let resources: Vec<Value> = kinds_in(group, version)
        .map(|k| {
            let mut subresources = Vec::new();
            if has_status(k) {
                subresources.push(json!({"subresource": "status", "responseKind": {"group": group, "version": version, "kind": k.kind}, "verbs": ["get", "patch", "update"]}));
            }
            if has_scale(k) {
                subresources.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
            }
            let mut resource = json!({
                "resource": k.plural,
                "responseKind": {"group": group, "version": version, "kind": k.kind},
                "scope": if k.namespaced { "Namespaced" } else { "Cluster" },
                "singularResource": singular(k),
                "verbs": VERBS,
                "shortNames": k.short_names,
                "subresources": subresources,
            });
            if matches!(k.kind, "Pod" | "Service" | "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" | "CronJob") {
                resource["categories"] = json!(["all"]);
            }
            resource
        })
        .collect();
    json!({
        "metadata": {"name": group, "creationTimestamp": null},
        "versions": [{"version": version, "resources": resources, "freshness": "Current"}],
    })
}

/// Aggregated `/api` (the core group) or `/apis` (every other group).
pub fn aggregated(core: bool, crds: &CrdRegistry) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group("", "v1")]
    } else {
        let mut items: Vec<Value> = groups()
            .into_iter()
            .map(|(g, v)| aggregated_group(g, v))
            .collect();
        items.extend(
            custom_groups(crds)
                .iter()
                .map(|(g, versions)| custom_aggregated(crds, g, versions)),
        );
        items
    };
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}
