//! A pod's volumes on its node, made before its containers start, as the kubelet's volume
//! manager makes them: `emptyDir` (a directory), `hostPath` (the host's path; created for
//! `DirectoryOrCreate`), `configMap` and `secret` (their keys as files, or the `items` chosen,
//! with `defaultMode`/`mode`), `downwardAPI` (pod fields as files) and `projected` (several of
//! those in one directory). Files are written under
//! `ROOT/volumes/<pod uid>/<volume>/`; a configMap or Secret that is missing and not
//! `optional` holds the pod in ContainerCreating with a `FailedMount` Event, and is tried again.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1 as core;
use kube::Api;

use super::env;

/// Why a volume cannot be made (yet).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A ConfigMap or Secret the pod needs does not exist.
    #[error("{kind} \"{name}\" not found")]
    Missing {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A key the volume's `items` name is not in the object.
    #[error("configmap or secret \"{name}\" has no key \"{key}\"")]
    Key {
        /// The object.
        name: String,
        /// The key.
        key: String,
    },
    /// The apiserver could not be asked.
    #[error("reading {what}: {source}")]
    Api {
        /// What was read.
        what: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// Writing the files failed.
    #[error("writing {path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An item path escapes its volume.
    #[error("volume item path {0:?} must be relative and must not contain '..'")]
    Path(String),
}

/// A volume ready to be mounted: where its content is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The volume's name.
    pub name: String,
    /// Its directory (or file) on the host.
    pub source: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The files of one volume: relative path → (content, mode).
type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn checked(path: &str) -> Result<String, VolumeError> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(VolumeError::Path(path.to_owned()));
    }
    Ok(path.to_owned())
}

/// The files of a ConfigMap's or Secret's `data` as a volume shows them.
fn key_files(
    name: &str,
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<core::KeyToPath>>,
    default_mode: u32,
    files: &mut Files,
) -> Result<(), VolumeError> {
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let content = data.get(&item.key).ok_or_else(|| VolumeError::Key {
                    name: name.to_owned(),
                    key: item.key.clone(),
                })?;
                let mode = item.mode.map_or(default_mode, |m| m as u32);
                files.insert(checked(&item.path)?, (content.clone(), mode));
            }
        }
        _ => {
            for (key, content) in data {
                files.insert(checked(&key)?, (content, default_mode));
            }
        }
    }
    Ok(())
}

/// Writes `files` into `dir`, replacing what was there.
fn write_files(dir: &Path, files: &Files) -> Result<(), VolumeError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (relative, (content, mode)) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, content).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode & 0o777))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// Makes the pod's volumes under `root` (the node's volume directory).
pub struct VolumeMaker<'a> {
    /// The client that reads ConfigMaps and Secrets.
    pub client: &'a kube::Client,
    /// The pod.
    pub pod: &'a core::Pod,
    /// The node's volume directory.
    pub root: &'a Path,
    /// The pod's IP and the node's, for `downwardAPI`.
    pub ips: (&'a str, &'a str),
}

impl VolumeMaker<'_> {
    fn namespace(&self) -> String {
        self.pod.metadata.namespace.clone().unwrap_or_default()
    }

    async fn config_map(
        &self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
        let api: Api<core::ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace());
        match api.get_opt(name).await {
            Ok(Some(cm)) => {
                let mut data: BTreeMap<String, Vec<u8>> = cm
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
                Ok(Some(data))
            }
            Ok(None) if optional => Ok(None),
            Ok(None) => Err(VolumeError::Missing {
                kind: "configmap",
                name: name.to_owned(),
            }),
            Err(source) => Err(VolumeError::Api {
                what: format!("configmap {name}"),
                source,
            }),
        }
    }

    async fn secret(
        &self,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>, VolumeError> {
        let api: Api<core::Secret> = Api::namespaced(self.client.clone(), &self.namespace());
        match api.get_opt(name).await {
            Ok(Some(secret)) => {
                let mut data: BTreeMap<String, Vec<u8>> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                // stringData is merged into data by the apiserver; kept here for safety.
                for (k, v) in secret.string_data.unwrap_or_default() {
                    data.entry(k).or_insert_with(|| v.into_bytes());
                }
                Ok(Some(data))
            }
            Ok(None) if optional => Ok(None),
            Ok(None) => Err(VolumeError::Missing {
                kind: "secret",
                name: name.to_owned(),
            }),
            Err(source) => Err(VolumeError::Api {
                what: format!("secret {name}"),
                source,
            }),
        }
    }

    fn downward(
        &self,
        items: &[core::DownwardAPIVolumeFile],
        default_mode: u32,
        files: &mut Files,
    ) -> Result<(), VolumeError> {
        for item in items {
            let value = item
                .field_ref
                .as_ref()
                .and_then(|f| env::field(self.pod, &f.field_path, self.ips.0, self.ips.1))
                .or_else(|| {
                    // labels and annotations as whole files: key="value" lines.
                    let path = item.field_ref.as_ref()?.field_path.as_str();
                    let map = match path {
                        "metadata.labels" => self.pod.metadata.labels.clone(),
                        "metadata.annotations" => self.pod.metadata.annotations.clone(),
                        _ => None,
                    }?;
                    Some(
                        map.iter()
                            .map(|(k, v)| format!("{k}={v:?}"))
                            .collect::<Vec<_>>()
                            .join("\n"),
                    )
                })
                .unwrap_or_default();
            let mode = item.mode.map_or(default_mode, |m| m as u32);
            files.insert(checked(&item.path)?, (value.into_bytes(), mode));
        }
        Ok(())
    }

    /// Makes `volume`; its place on the host.
    pub async fn make(&self, volume: &core::Volume) -> Result<Prepared, VolumeError> {
        let uid = self.pod.metadata.uid.clone().unwrap_or_default();
        let dir = self.root.join(&uid).join(&volume.name);
        let mut files = Files::new();
        let source = if let Some(host) = &volume.host_path {
            let path = PathBuf::from(&host.path);
            if host.type_.as_deref() == Some("DirectoryOrCreate") && !path.exists() {
                std::fs::create_dir_all(&path).map_err(io(&path))?;
            }
            return Ok(Prepared {
                name: volume.name.clone(),
                source: path,
            });
        } else if let Some(cm) = &volume.config_map {
            let mode = cm.default_mode.map_or(0o644, |m| m as u32);
            if let Some(data) = self
                .config_map(&cm.name, cm.optional.unwrap_or(false))
                .await?
            {
                key_files(&cm.name, data, cm.items.as_ref(), mode, &mut files)?;
            }
            dir
        } else if let Some(secret) = &volume.secret {
            let mode = secret.default_mode.map_or(0o644, |m| m as u32);
            let name = secret.secret_name.clone().unwrap_or_default();
            if let Some(data) = self.secret(&name, secret.optional.unwrap_or(false)).await? {
                key_files(&name, data, secret.items.as_ref(), mode, &mut files)?;
            }
            dir
        } else if let Some(down) = &volume.downward_api {
            let mode = down.default_mode.map_or(0o644, |m| m as u32);
            self.downward(down.items.as_deref().unwrap_or_default(), mode, &mut files)?;
            dir
        } else if let Some(projected) = &volume.projected {
            let mode = projected.default_mode.map_or(0o644, |m| m as u32);
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    if let Some(data) = self
                        .config_map(&cm.name, cm.optional.unwrap_or(false))
                        .await?
                    {
                        key_files(&cm.name, data, cm.items.as_ref(), mode, &mut files)?;
                    }
                } else if let Some(secret) = &source.secret {
                    if let Some(data) = self
                        .secret(&secret.name, secret.optional.unwrap_or(false))
                        .await?
                    {
                        key_files(&secret.name, data, secret.items.as_ref(), mode, &mut files)?;
                    }
                } else if let Some(down) = &source.downward_api {
                    self.downward(down.items.as_deref().unwrap_or_default(), mode, &mut files)?;
                }
            }
            dir
        } else {
            // emptyDir, and kinds this node does not make, as an empty directory.
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            return Ok(Prepared {
                name: volume.name.clone(),
                source: dir,
            });
        };
        write_files(&source, &files)?;
        Ok(Prepared {
            name: volume.name.clone(),
            source,
        })
    }
}

/// Removes what the pod's volumes left under `root`.
pub fn remove(root: &Path, uid: &str) -> Result<(), VolumeError> {
    let dir = root.join(uid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(VolumeError::Io {
            path: dir.display().to_string(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_choose_keys_paths_and_modes() {
        let data = BTreeMap::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        let mut files = Files::new();
        let items = vec![core::KeyToPath {
            key: "b".into(),
            path: "sub/bee".into(),
            mode: Some(0o600),
        }];
        key_files("cm", data.clone(), Some(&items), 0o644, &mut files).expect("files");
        assert_eq!(
            files,
            Files::from([("sub/bee".into(), (b"2".to_vec(), 0o600))])
        );
        let mut all = Files::new();
        key_files("cm", data.clone(), None, 0o640, &mut all).expect("files");
        assert_eq!(all.len(), 2);
        let missing = vec![core::KeyToPath {
            key: "zz".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(matches!(
            key_files("cm", data.clone(), Some(&missing), 0o644, &mut Files::new()),
            Err(VolumeError::Key { .. })
        ));
        let escape = vec![core::KeyToPath {
            key: "a".into(),
            path: "../x".into(),
            mode: None,
        }];
        assert!(matches!(
            key_files("cm", data, Some(&escape), 0o644, &mut Files::new()),
            Err(VolumeError::Path(_))
        ));
    }

    #[test]
    fn files_are_written_with_their_modes_and_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("v");
        let files = Files::from([
            ("index.html".into(), (b"<h1>hi</h1>".to_vec(), 0o644)),
            ("sub/key".into(), (b"secret".to_vec(), 0o600)),
        ]);
        write_files(&target, &files).expect("written");
        assert_eq!(
            std::fs::read_to_string(target.join("index.html")).expect("read"),
            "<h1>hi</h1>"
        );
        let mode = std::fs::metadata(target.join("sub/key"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        write_files(&target, &Files::new()).expect("replaced");
        assert!(!target.join("index.html").exists());
    }
}
