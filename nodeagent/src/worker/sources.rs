//! The ConfigMaps and Secrets one pod reads, fetched together: everything its volumes
//! (`configMap`, `secret`, `projected`) and its containers' `env`/`envFrom` name, each object
//! read once per pass. Volumes and environments are then made from this one snapshot, and the
//! worker reads it again when it refreshes the pod's volumes (live updates of their files).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1 as core;
use kube::Api;

/// Which kind of object a reference names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// A ConfigMap (`data` and `binaryData`).
    ConfigMap,
    /// A Secret (`data`).
    Secret,
}

impl SourceKind {
    /// The lower-case word Kubernetes' messages use (`configmap "x" not found`).
    pub fn word(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "configmap",
            SourceKind::Secret => "secret",
        }
    }

    /// The kind as a title (`couldn't find key k in Secret ns/x`).
    pub fn title(self) -> &'static str {
        match self {
            SourceKind::ConfigMap => "ConfigMap",
            SourceKind::Secret => "Secret",
        }
    }
}

/// The keys and values of one object.
pub type Data = BTreeMap<String, Vec<u8>>;

/// What a pod's ConfigMaps and Secrets held when last read (`None`: it does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodSources {
    objects: HashMap<(SourceKind, String), Option<Data>>,
}

/// Every (kind, name) `pod`'s volumes refer to (the objects whose changes reach its files).
pub fn volume_references(pod: &core::Pod) -> BTreeSet<(SourceKind, String)> {
    let mut found = BTreeSet::new();
    let Some(spec) = &pod.spec else {
        return found;
    };
    let mut add = |kind, name: &str| {
        found.insert((kind, name.to_owned()));
    };
    for volume in spec.volumes.iter().flatten() {
        if let Some(cm) = &volume.config_map {
            add(SourceKind::ConfigMap, &cm.name);
        }
        if let Some(secret) = &volume.secret {
            add(
                SourceKind::Secret,
                secret.secret_name.as_deref().unwrap_or_default(),
            );
        }
        for source in volume
            .projected
            .iter()
            .flat_map(|p| p.sources.iter().flatten())
        {
            if let Some(cm) = &source.config_map {
                add(SourceKind::ConfigMap, &cm.name);
            }
            if let Some(secret) = &source.secret {
                add(SourceKind::Secret, &secret.name);
            }
        }
    }
    found
}

/// Every (kind, name) `pod` refers to, in its volumes and its containers' environments.
pub fn references(pod: &core::Pod) -> BTreeSet<(SourceKind, String)> {
    let mut found = volume_references(pod);
    let Some(spec) = &pod.spec else {
        return found;
    };
    let mut add = |kind, name: &str| {
        found.insert((kind, name.to_owned()));
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for from in c.env.iter().flatten().filter_map(|v| v.value_from.as_ref()) {
            if let Some(r) = &from.config_map_key_ref {
                add(SourceKind::ConfigMap, &r.name);
            }
            if let Some(r) = &from.secret_key_ref {
                add(SourceKind::Secret, &r.name);
            }
        }
        for from in c.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                add(SourceKind::ConfigMap, &r.name);
            }
            if let Some(r) = &from.secret_ref {
                add(SourceKind::Secret, &r.name);
            }
        }
    }
    found
}

fn config_map_data(cm: core::ConfigMap) -> Data {
    let mut data: Data = cm
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    data.extend(
        cm.binary_data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    data
}

fn secret_data(secret: core::Secret) -> Data {
    let mut data: Data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    // The apiserver folds stringData into data; a client-built object may still carry it.
    for (k, v) in secret.string_data.unwrap_or_default() {
        data.entry(k).or_insert_with(|| v.into_bytes());
    }
    data
}

impl PodSources {
    /// Reads every object `pod` refers to, each once.
    pub async fn read(client: &kube::Client, pod: &core::Pod) -> Result<PodSources, kube::Error> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut objects = HashMap::new();
        for (kind, name) in references(pod) {
            let data = match kind {
                SourceKind::ConfigMap => {
                    let api: Api<core::ConfigMap> = Api::namespaced(client.clone(), namespace);
                    api.get_opt(&name).await?.map(config_map_data)
                }
                SourceKind::Secret => {
                    let api: Api<core::Secret> = Api::namespaced(client.clone(), namespace);
                    api.get_opt(&name).await?.map(secret_data)
                }
            };
            objects.insert((kind, name), data);
        }
        Ok(PodSources { objects })
    }

    /// Sources made of the given objects (tests, and callers that already hold them).
    pub fn from_objects(
        objects: impl IntoIterator<Item = (SourceKind, String, Option<Data>)>,
    ) -> PodSources {
        PodSources {
            objects: objects
                .into_iter()
                .map(|(kind, name, data)| ((kind, name), data))
                .collect(),
        }
    }

    /// The object's data; `None` when it does not exist (or was not read).
    pub fn get(&self, kind: SourceKind, name: &str) -> Option<&Data> {
        self.objects
            .get(&(kind, name.to_owned()))
            .and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_cover_volumes_projections_and_environments_once_each() {
        let pod: core::Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "demo"},
            "spec": {
                "volumes": [
                    {"name": "a", "configMap": {"name": "settings"}},
                    {"name": "b", "secret": {"secretName": "creds"}},
                    {"name": "c", "projected": {"sources": [
                        {"configMap": {"name": "extra"}}, {"secret": {"name": "creds"}}
                    ]}}
                ],
                "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "boot"}}]}],
                "containers": [{"name": "c", "env": [
                    {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "k"}}}
                ]}]
            }
        }))
        .expect("pod");
        let names: Vec<_> = references(&pod)
            .into_iter()
            .map(|(k, n)| format!("{}/{n}", k.word()))
            .collect();
        assert_eq!(
            names,
            [
                "configmap/extra",
                "configmap/settings",
                "secret/boot",
                "secret/creds"
            ]
        );
    }

    #[test]
    fn binary_data_and_string_data_are_read_as_bytes() {
        let cm: core::ConfigMap = serde_json::from_value(serde_json::json!({
            "data": {"a": "1"}, "binaryData": {"b": "Ag=="}
        }))
        .expect("configmap");
        assert_eq!(
            config_map_data(cm),
            Data::from([("a".into(), b"1".to_vec()), ("b".into(), vec![2])])
        );
        let secret: core::Secret = serde_json::from_value(serde_json::json!({
            "data": {"a": "eA=="}, "stringData": {"a": "ignored", "s": "plain"}
        }))
        .expect("secret");
        assert_eq!(
            secret_data(secret),
            Data::from([("a".into(), b"x".to_vec()), ("s".into(), b"plain".to_vec())])
        );
    }
}
