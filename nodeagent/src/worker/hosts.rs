//! The `/etc/hosts` a pod with a network of its own sees, as the kubelet writes it: the
//! loopback names, the pod's IP with its hostname (and its fully qualified name under a
//! `subdomain`), then the pod's `hostAliases`. Written once the sandbox has its IP, beside the
//! pod's volumes, and bind-mounted over `/etc/hosts` in each of its containers.

use k8s_openapi::api::core::v1 as core;

/// The file's name in the pod's volume directory (no volume can be named so).
pub const FILE: &str = ".etc-hosts";

/// The cluster's DNS domain.
const DOMAIN: &str = "cluster.local";

/// The hosts file of `pod` at `ip`.
pub fn content(pod: &core::Pod, ip: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let hostname = spec
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or(name);
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    match spec.subdomain.as_deref().filter(|s| !s.is_empty()) {
        Some(sub) => {
            out.push_str(&format!(
                "{ip}\t{hostname}.{sub}.{namespace}.svc.{DOMAIN}\t{hostname}\n"
            ));
        }
        None => out.push_str(&format!("{ip}\t{hostname}\n")),
    }
    let aliases = spec.host_aliases.unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias.hostnames.unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", alias.ip));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pod_s_name_subdomain_and_aliases_are_listed() {
        let pod: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-0", "namespace": "shop"},
            "spec": {"containers": [], "subdomain": "web",
                "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["db", "db.local"]}]}
        }))
        .expect("pod");
        let hosts = content(&pod, "10.244.0.7");
        assert!(hosts.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(hosts.contains("10.244.0.7\tweb-0.web.shop.svc.cluster.local\tweb-0\n"));
        assert!(hosts.ends_with("# Entries added by HostAliases.\n10.1.2.3\tdb\tdb.local\n"));
    }
}
