//! A container's environment as the kubelet builds it: `PATH` and `HOSTNAME` first, then the
//! spec's `env` in order, each value with `$(VAR)` references to earlier variables expanded
//! (`$$` escapes a `$`; an unknown reference stays as written), values from the pod's own
//! fields (`fieldRef`) and from ConfigMaps and Secrets (`configMapKeyRef`, `secretKeyRef`,
//! `envFrom` with its `prefix`). A ConfigMap, Secret or key that is missing and not `optional`
//! is a `CreateContainerConfigError`. The command and args are expanded the same way.

use std::collections::BTreeMap;

use ferry_schema::quantity::Quantity;
use k8s_openapi::api::core::v1 as core;

use super::sources::{PodSources, SourceKind};

/// The `PATH` a container gets when its spec does not set one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Expands `$(NAME)` in `text` from `env` (the last definition wins); `$$` is a literal `$`.
pub fn expand(text: &str, env: &[(String, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(close) = inner.find(')')
        {
            let name = &inner[..close];
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[close + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// The value of a `fieldRef` path on `pod`, as the downward API gives it.
pub fn field(pod: &core::Pod, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let keyed = |prefix: &str| {
        path.strip_prefix(prefix)
            .and_then(|p| p.strip_suffix("']"))
            .map(str::to_owned)
    };
    if let Some(key) = keyed("metadata.labels['") {
        return meta.labels.as_ref().and_then(|l| l.get(&key).cloned());
    }
    if let Some(key) = keyed("metadata.annotations['") {
        return meta.annotations.as_ref().and_then(|a| a.get(&key).cloned());
    }
    match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" => Some(pod_ip.to_owned()),
        "status.hostIP" => Some(host_ip.to_owned()),
        _ => None,
    }
}

/// The value of `key` in the ConfigMap or Secret `name`; `Err` names what is missing.
fn lookup(
    sources: &PodSources,
    kind: SourceKind,
    (name, key): (&str, &str),
    optional: bool,
    namespace: &str,
) -> Result<Option<String>, String> {
    match sources.get(kind, name) {
        None if optional => Ok(None),
        None => Err(format!("{} \"{name}\" not found", kind.word())),
        Some(data) => match data.get(key) {
            Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            None if optional => Ok(None),
            None => Err(format!(
                "couldn't find key {key} in {} {namespace}/{name}",
                kind.title()
            )),
        },
    }
}

/// Where a container runs: what `fieldRef` and `resourceFieldRef` read besides the pod.
#[derive(Debug, Clone, Copy)]
pub struct Place<'a> {
    /// The pod's IP.
    pub pod_ip: &'a str,
    /// The node's IP.
    pub host_ip: &'a str,
    /// The node's allocatable resources: the value of a limit the container leaves unset.
    pub allocatable: &'a BTreeMap<String, String>,
}

/// The value of a `resourceFieldRef` (`limits.cpu`, `requests.memory`, ...) of `container`,
/// divided by its `divisor` and rounded up, as the downward API gives it; an unset limit is
/// the node's allocatable amount.
pub fn resource_field(
    container: &core::Container,
    selector: &core::ResourceFieldSelector,
    allocatable: &BTreeMap<String, String>,
) -> Result<String, String> {
    let (which, resource) = selector
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported container resource: {:?}", selector.resource))?;
    let resources = container.resources.as_ref();
    let set = match which {
        "limits" => resources.and_then(|r| r.limits.as_ref()),
        "requests" => resources.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(format!(
                "unsupported container resource: {:?}",
                selector.resource
            ));
        }
    };
    let value = set
        .and_then(|l| l.get(resource))
        .map(|q| q.0.clone())
        .or_else(|| match which {
            "limits" => allocatable.get(resource).cloned(),
            // An unset request is 0 (cpu and memory alike).
            _ => Some("0".into()),
        })
        .unwrap_or_else(|| "0".into());
    let parse = |text: &str| {
        Quantity::parse(text).map_err(|e| format!("resourceFieldRef {}: {e}", selector.resource))
    };
    let quantity = parse(&value)?;
    let divisor = parse(selector.divisor.as_ref().map_or("1", |d| d.0.as_str()))?;
    let (top, bottom) = (quantity.milli_value(), divisor.milli_value());
    if bottom <= 0 {
        return Err(format!(
            "resourceFieldRef {}: the divisor must be positive",
            selector.resource
        ));
    }
    // Rounded up, as the kubelet rounds (cpu 250m with divisor 1 is 1).
    Ok(((top + bottom - 1).div_euclid(bottom)).to_string())
}

/// The environment of `container` in `pod`; `Err` names what is missing
/// (`CreateContainerConfigError`).
pub fn resolve(
    pod: &core::Pod,
    container: &core::Container,
    place: Place<'_>,
    sources: &PodSources,
) -> Result<Vec<(String, String)>, String> {
    let (pod_ip, host_ip) = (place.pod_ip, place.host_ip);
    let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        (
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ];
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| {
        env.retain(|(k, _)| *k != name);
        env.push((name, value));
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (SourceKind::ConfigMap, &r.name, r.optional.unwrap_or(false)),
            (None, Some(r)) => (SourceKind::Secret, &r.name, r.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        match sources.get(kind, name) {
            Some(data) => {
                for (k, v) in data {
                    set(
                        &mut env,
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(v).into_owned(),
                    );
                }
            }
            None if optional => {}
            None => return Err(format!("{} \"{name}\" not found", kind.word())),
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => expand(value, &env),
            (None, Some(from)) => {
                let found = if let Some(r) = &from.field_ref {
                    field(pod, &r.field_path, pod_ip, host_ip)
                } else if let Some(r) = &from.config_map_key_ref {
                    lookup(
                        sources,
                        SourceKind::ConfigMap,
                        (&r.name, &r.key),
                        r.optional.unwrap_or(false),
                        namespace,
                    )?
                } else if let Some(r) = &from.secret_key_ref {
                    lookup(
                        sources,
                        SourceKind::Secret,
                        (&r.name, &r.key),
                        r.optional.unwrap_or(false),
                        namespace,
                    )?
                } else if let Some(r) = &from.resource_field_ref {
                    Some(resource_field(container, r, place.allocatable)?)
                } else {
                    None
                };
                match found {
                    Some(v) => v,
                    None => continue,
                }
            }
            (None, None) => String::new(),
        };
        set(&mut env, var.name.clone(), value);
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::sources::Data;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn references_expand_escapes_stay_and_unknowns_are_kept() {
        let e = env(&[("A", "1"), ("B", "two")]);
        assert_eq!(expand("x$(A)y$(B)", &e), "x1ytwo");
        assert_eq!(expand("$$(A) costs $5", &e), "$(A) costs $5");
        assert_eq!(expand("$(C) and $(A", &e), "$(C) and $(A");
    }

    fn place<'a>(ips: (&'a str, &'a str), allocatable: &'a BTreeMap<String, String>) -> Place<'a> {
        Place {
            pod_ip: ips.0,
            host_ip: ips.1,
            allocatable,
        }
    }

    #[test]
    fn resource_fields_divide_round_up_and_fall_back_to_the_node() {
        let c: core::Container = serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"}}
        }))
        .expect("container");
        let node = BTreeMap::from([("ephemeral-storage".into(), "10Gi".into())]);
        let field = |resource: &str, divisor: Option<&str>| {
            let selector = core::ResourceFieldSelector {
                resource: resource.into(),
                divisor: divisor
                    .map(|d| k8s_openapi::apimachinery::pkg::api::resource::Quantity(d.into())),
                container_name: None,
            };
            resource_field(&c, &selector, &node)
        };
        assert_eq!(field("limits.memory", None).as_deref(), Ok("67108864"));
        assert_eq!(field("limits.memory", Some("1Mi")).as_deref(), Ok("64"));
        assert_eq!(field("limits.cpu", None).as_deref(), Ok("1"));
        assert_eq!(field("limits.cpu", Some("1m")).as_deref(), Ok("250"));
        assert_eq!(field("requests.cpu", None).as_deref(), Ok("0"));
        assert_eq!(
            field("limits.ephemeral-storage", Some("1Gi")).as_deref(),
            Ok("10")
        );
        assert!(field("limits", None).is_err());
    }

    #[test]
    fn values_see_earlier_variables_and_the_pod() {
        let pod: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "env": [
                {"name": "GREETING", "value": "hi"},
                {"name": "MESSAGE", "value": "$(GREETING) from $(ME)"},
                {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}
            ]}]}
        }))
        .expect("pod");
        let c = &pod.spec.as_ref().expect("spec").containers[0];
        let got = resolve(
            &pod,
            c,
            place(("10.0.0.5", "127.0.0.1"), &BTreeMap::new()),
            &PodSources::default(),
        )
        .expect("env");
        let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MESSAGE"), Some("hi from $(ME)"));
        assert_eq!(get("ME"), Some("web-1"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.0.0.5"));
        assert_eq!(get("HOSTNAME"), Some("web-1"));
        assert_eq!(get("PATH"), Some(DEFAULT_PATH));
    }

    #[test]
    fn config_maps_and_secrets_feed_the_environment_or_name_what_is_missing() {
        let pod: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "demo"},
            "spec": {"containers": [{"name": "c",
                "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "APP_"}],
                "env": [
                    {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
                    {"name": "MAYBE", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}}
                ]}]}
        }))
        .expect("pod");
        let c = &pod.spec.as_ref().expect("spec").containers[0];
        let settings = Some(Data::from([("mode".into(), b"fast".to_vec())]));
        let with = |creds: Option<Data>| {
            PodSources::from_objects([
                (SourceKind::ConfigMap, "settings".into(), settings.clone()),
                (SourceKind::Secret, "creds".into(), creds),
            ])
        };
        assert_eq!(
            resolve(&pod, c, place(("", ""), &BTreeMap::new()), &with(None)),
            Err("secret \"creds\" not found".to_owned())
        );
        assert_eq!(
            resolve(
                &pod,
                c,
                place(("", ""), &BTreeMap::new()),
                &with(Some(Data::new()))
            ),
            Err("couldn't find key token in Secret demo/creds".to_owned())
        );
        let sources = with(Some(Data::from([("token".into(), b"t0k".to_vec())])));
        let env = resolve(&pod, c, place(("", ""), &BTreeMap::new()), &sources).expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            (get("APP_mode"), get("TOKEN"), get("MAYBE")),
            (Some("fast"), Some("t0k"), None)
        );
    }
}
