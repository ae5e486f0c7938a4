//! A container's environment as the kubelet builds it: `PATH` and `HOSTNAME` first, then the
//! spec's `env` in order, each value with `$(VAR)` references to earlier variables expanded
//! (`$$` escapes a `$`; an unknown reference stays as written), values from the pod's own
//! fields (`fieldRef`) and from ConfigMaps and Secrets (`configMapKeyRef`, `secretKeyRef`,
//! `envFrom` with its `prefix`). A ConfigMap, Secret or key that is missing and not `optional`
//! is a `CreateContainerConfigError`. The command and args are expanded the same way.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1 as core;
use kube::Api;

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

/// The ConfigMaps and Secrets a container's environment reads (`None`: it does not exist).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    secrets: HashMap<String, Option<BTreeMap<String, String>>>,
}

impl Sources {
    /// Reads what `container`'s env and envFrom refer to, in `namespace`.
    pub async fn fetch(
        client: &kube::Client,
        namespace: &str,
        container: &core::Container,
    ) -> Result<Sources, kube::Error> {
        let mut maps: Vec<String> = Vec::new();
        let mut secrets: Vec<String> = Vec::new();
        for var in container.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                maps.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
                secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
            }
        }
        for from in container.env_from.iter().flatten() {
            maps.extend(from.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(from.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        let mut sources = Sources::default();
        for name in maps {
            if sources.config_maps.contains_key(&name) {
                continue;
            }
            let api: Api<core::ConfigMap> = Api::namespaced(client.clone(), namespace);
            let data = api
                .get_opt(&name)
                .await?
                .map(|cm| cm.data.unwrap_or_default());
            sources.config_maps.insert(name, data);
        }
        for name in secrets {
            if sources.secrets.contains_key(&name) {
                continue;
            }
            let api: Api<core::Secret> = Api::namespaced(client.clone(), namespace);
            let data = api.get_opt(&name).await?.map(|s| {
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect()
            });
            sources.secrets.insert(name, data);
        }
        Ok(sources)
    }

    fn lookup(
        &self,
        secret: bool,
        name: &str,
        key: &str,
        optional: bool,
        namespace: &str,
    ) -> Result<Option<String>, String> {
        let (table, kind, title) = if secret {
            (&self.secrets, "secret", "Secret")
        } else {
            (&self.config_maps, "configmap", "ConfigMap")
        };
        match table.get(name).cloned().flatten() {
            None if optional => Ok(None),
            None => Err(format!("{kind} \"{name}\" not found")),
            Some(data) => match data.get(key) {
                Some(v) => Ok(Some(v.clone())),
                None if optional => Ok(None),
                None => Err(format!(
                    "couldn't find key {key} in {title} {namespace}/{name}"
                )),
            },
        }
    }
}

/// The environment of `container` in `pod`; `Err` names what is missing
/// (`CreateContainerConfigError`).
pub fn resolve(
    pod: &core::Pod,
    container: &core::Container,
    ips: (&str, &str),
    sources: &Sources,
) -> Result<Vec<(String, String)>, String> {
    let (pod_ip, host_ip) = ips;
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
        let (secret, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (false, r.name.clone(), r.optional.unwrap_or(false)),
            (None, Some(r)) => (true, r.name.clone(), r.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        let table = if secret {
            &sources.secrets
        } else {
            &sources.config_maps
        };
        match table.get(&name).cloned().flatten() {
            Some(data) => {
                for (k, v) in data {
                    set(&mut env, format!("{prefix}{k}"), v);
                }
            }
            None if optional => {}
            None => {
                let kind = if secret { "secret" } else { "configmap" };
                return Err(format!("{kind} \"{name}\" not found"));
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => expand(value, &env),
            (None, Some(from)) => {
                let found = if let Some(r) = &from.field_ref {
                    field(pod, &r.field_path, pod_ip, host_ip)
                } else if let Some(r) = &from.config_map_key_ref {
                    sources.lookup(
                        false,
                        &r.name,
                        &r.key,
                        r.optional.unwrap_or(false),
                        namespace,
                    )?
                } else if let Some(r) = &from.secret_key_ref {
                    sources.lookup(
                        true,
                        &r.name,
                        &r.key,
                        r.optional.unwrap_or(false),
                        namespace,
                    )?
                } else {
                    // resourceFieldRef comes with cgroups.
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
        let got = resolve(&pod, c, ("10.0.0.5", "127.0.0.1"), &Sources::default()).expect("env");
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
        let mut sources = Sources::default();
        sources.config_maps.insert(
            "settings".into(),
            Some(BTreeMap::from([("mode".into(), "fast".into())])),
        );
        assert_eq!(
            resolve(&pod, c, ("", ""), &sources),
            Err("secret \"creds\" not found".to_owned())
        );
        sources
            .secrets
            .insert("creds".into(), Some(BTreeMap::new()));
        assert_eq!(
            resolve(&pod, c, ("", ""), &sources),
            Err("couldn't find key token in Secret demo/creds".to_owned())
        );
        sources.secrets.insert(
            "creds".into(),
            Some(BTreeMap::from([("token".into(), "t0k".into())])),
        );
        let env = resolve(&pod, c, ("", ""), &sources).expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(
            (get("APP_mode"), get("TOKEN"), get("MAYBE")),
            (Some("fast"), Some("t0k"), None)
        );
    }
}
