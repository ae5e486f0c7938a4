//! A container's environment as the kubelet builds it: `PATH` and `HOSTNAME` first, then the
//! spec's `env` in order, each value with `$(VAR)` references to earlier variables expanded
//! (`$$` escapes a `$`; an unknown reference stays as written), and values from the pod's own
//! fields (`fieldRef`). The command and args are expanded the same way.

use k8s_openapi::api::core::v1 as core;

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

/// The environment of `container` in `pod`.
pub fn resolve(
    pod: &core::Pod,
    container: &core::Container,
    pod_ip: &str,
    host_ip: &str,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        (
            "HOSTNAME".into(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ];
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(value), _) => expand(value, &env),
            (None, Some(from)) => match &from.field_ref {
                Some(r) => field(pod, &r.field_path, pod_ip, host_ip).unwrap_or_default(),
                // ConfigMap, Secret and resource references come with volumes.
                None => continue,
            },
            (None, None) => String::new(),
        };
        env.retain(|(k, _)| *k != var.name);
        env.push((var.name.clone(), value));
    }
    env
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
        let got = resolve(&pod, c, "10.0.0.5", "127.0.0.1");
        let get = |k: &str| got.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("MESSAGE"), Some("hi from $(ME)"));
        assert_eq!(get("ME"), Some("web-1"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.0.0.5"));
        assert_eq!(get("HOSTNAME"), Some("web-1"));
        assert_eq!(get("PATH"), Some(DEFAULT_PATH));
    }
}
