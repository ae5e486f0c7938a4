//! A pod as a worker keeps it for the pod's whole life, without the slack of its parsing.
//!
//! A pod read straight from a watch's JSON (the kube crate parses the event in one pass when
//! `type` comes before `object`) has every list grown by doubling, so a pod with one
//! container holds room for four, and a `Container` is over a kilobyte. Held by thousands of
//! workers, that slack was about a quarter of a hollow node process's memory; [`compact`]
//! gives it back. The managedFields, which the kubelet never reads, go too.

use k8s_openapi::api::core::v1::{Container, Pod};

fn fit<T>(list: &mut Option<Vec<T>>) {
    if let Some(list) = list {
        list.shrink_to_fit();
    }
}

fn fit_container(c: &mut Container) {
    fit(&mut c.args);
    fit(&mut c.command);
    fit(&mut c.env);
    fit(&mut c.env_from);
    fit(&mut c.ports);
    fit(&mut c.volume_mounts);
    fit(&mut c.volume_devices);
    fit(&mut c.resize_policy);
}

/// Drops `pod`'s managedFields and the spare capacity of its lists.
pub fn compact(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    fit(&mut meta.owner_references);
    fit(&mut meta.finalizers);
    if let Some(spec) = pod.spec.as_mut() {
        spec.containers.shrink_to_fit();
        spec.containers.iter_mut().for_each(fit_container);
        if let Some(init) = spec.init_containers.as_mut() {
            init.shrink_to_fit();
            init.iter_mut().for_each(fit_container);
        }
        fit(&mut spec.ephemeral_containers);
        fit(&mut spec.tolerations);
        fit(&mut spec.volumes);
        fit(&mut spec.host_aliases);
        fit(&mut spec.image_pull_secrets);
        fit(&mut spec.readiness_gates);
        fit(&mut spec.topology_spread_constraints);
    }
    if let Some(status) = pod.status.as_mut() {
        fit(&mut status.conditions);
        fit(&mut status.container_statuses);
        fit(&mut status.init_container_statuses);
        fit(&mut status.ephemeral_container_statuses);
        fit(&mut status.pod_ips);
        fit(&mut status.host_ips);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_keep_their_items_and_lose_their_slack() {
        let text = r#"{"metadata": {"name": "p", "managedFields": [{"manager": "m"}]},
            "spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}],
                     "tolerations": [{"key": "a"}, {"key": "b"}]},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}"#;
        let mut pod: Pod = serde_json::from_str(text).expect("pod");
        let before = pod.clone();
        compact(&mut pod);
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.containers.capacity(), 1);
        assert_eq!(spec.tolerations.as_ref().map(Vec::capacity), Some(2));
        assert_eq!(spec.containers[0].env.as_ref().map(Vec::capacity), Some(1));
        assert_eq!(pod.metadata.managed_fields, None);
        assert_eq!(pod.spec, before.spec, "nothing but capacity changes");
        assert_eq!(pod.status, before.status);
    }
}
