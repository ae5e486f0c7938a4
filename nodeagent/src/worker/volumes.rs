//! A pod's volumes on its node, made before its containers start, as the kubelet's volume
//! manager makes them: `emptyDir` (a directory; a tmpfs for `medium: Memory`), `hostPath` (the host's path; created for
//! `DirectoryOrCreate`), `configMap` and `secret` (their keys as files, or the `items` chosen,
//! with `defaultMode`/`mode`), `downwardAPI` (pod fields as files) and `projected` (several of
//! those in one directory), from the pod's [`PodSources`]. Files are written under
//! `ROOT/volumes/<pod uid>/<volume>/` by the [`atomic`](super::atomic) writer, so making a volume
//! again with newer sources updates its files in place (live updates); a configMap or Secret
//! that is missing and not `optional` holds the pod in ContainerCreating with a `FailedMount`
//! Event, and is tried again.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1 as core;

use super::atomic::{self, Files};
use super::env;
use super::sources::{Data, PodSources, SourceKind};

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

fn checked(path: &str) -> Result<String, VolumeError> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(VolumeError::Path(path.to_owned()));
    }
    Ok(path.to_owned())
}

/// The files of a ConfigMap's or Secret's `data` as a volume shows them.
fn key_files(
    name: &str,
    data: &Data,
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
                files.insert(checked(key)?, (content.clone(), default_mode));
            }
        }
    }
    Ok(())
}

/// Makes the pod's volumes under `root` (the node's volume directory).
pub struct VolumeMaker<'a> {
    /// The ConfigMaps and Secrets the pod's volumes read.
    pub sources: &'a PodSources,
    /// The pod.
    pub pod: &'a core::Pod,
    /// The node's volume directory.
    pub root: &'a Path,
    /// The pod's IP and the node's, for `downwardAPI`.
    pub ips: (&'a str, &'a str),
}

impl VolumeMaker<'_> {
    /// The data of a ConfigMap or Secret; `None` for a missing optional one.
    fn data(
        &self,
        kind: SourceKind,
        name: &str,
        optional: Option<bool>,
    ) -> Result<Option<&Data>, VolumeError> {
        match self.sources.get(kind, name) {
            Some(data) => Ok(Some(data)),
            None if optional.unwrap_or(false) => Ok(None),
            None => Err(VolumeError::Missing {
                kind: kind.word(),
                name: name.to_owned(),
            }),
        }
    }

    /// Adds a ConfigMap's or Secret's keys (or the chosen `items`) to `files`.
    fn add_keys(
        &self,
        (kind, name): (SourceKind, &str),
        (items, optional): (Option<&Vec<core::KeyToPath>>, Option<bool>),
        mode: u32,
        files: &mut Files,
    ) -> Result<(), VolumeError> {
        match self.data(kind, name, optional)? {
            Some(data) => key_files(name, data, items, mode, files),
            None => Ok(()),
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

    /// Makes `volume`, or brings its files up to date; its place on the host.
    pub fn make(&self, volume: &core::Volume) -> Result<Prepared, VolumeError> {
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
            let keys = (cm.items.as_ref(), cm.optional);
            self.add_keys((SourceKind::ConfigMap, &cm.name), keys, mode, &mut files)?;
            dir
        } else if let Some(secret) = &volume.secret {
            let mode = secret.default_mode.map_or(0o644, |m| m as u32);
            let name = secret.secret_name.as_deref().unwrap_or_default();
            let keys = (secret.items.as_ref(), secret.optional);
            self.add_keys((SourceKind::Secret, name), keys, mode, &mut files)?;
            dir
        } else if let Some(down) = &volume.downward_api {
            let mode = down.default_mode.map_or(0o644, |m| m as u32);
            self.downward(down.items.as_deref().unwrap_or_default(), mode, &mut files)?;
            dir
        } else if let Some(projected) = &volume.projected {
            let mode = projected.default_mode.map_or(0o644, |m| m as u32);
            for source in projected.sources.iter().flatten() {
                if let Some(cm) = &source.config_map {
                    let keys = (cm.items.as_ref(), cm.optional);
                    self.add_keys((SourceKind::ConfigMap, &cm.name), keys, mode, &mut files)?;
                } else if let Some(secret) = &source.secret {
                    let keys = (secret.items.as_ref(), secret.optional);
                    self.add_keys((SourceKind::Secret, &secret.name), keys, mode, &mut files)?;
                } else if let Some(down) = &source.downward_api {
                    self.downward(down.items.as_deref().unwrap_or_default(), mode, &mut files)?;
                }
            }
            dir
        } else if let Some(empty) = volume
            .empty_dir
            .as_ref()
            .filter(|e| e.medium.as_deref() == Some("Memory"))
        {
            let size = empty
                .size_limit
                .as_ref()
                .and_then(|q| ferry_schema::quantity::Quantity::parse(&q.0).ok())
                .and_then(|q| u64::try_from(q.value()).ok());
            super::tmpfs::mount(&dir, size).map_err(io(&dir))?;
            return Ok(Prepared {
                name: volume.name.clone(),
                source: dir,
            });
        } else {
            // emptyDir, and kinds this node does not make, as an empty directory.
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            return Ok(Prepared {
                name: volume.name.clone(),
                source: dir,
            });
        };
        atomic::write(&source, &files).map_err(io(&source))?;
        Ok(Prepared {
            name: volume.name.clone(),
            source,
        })
    }
}

/// Removes what the pod's volumes left under `root`.
pub fn remove(root: &Path, uid: &str) -> Result<(), VolumeError> {
    let dir = root.join(uid);
    // Memory-backed emptyDirs first: their tmpfs is unmounted, not emptied.
    super::tmpfs::unmount_under(&dir).map_err(io(&dir))?;
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
        let data = Data::from([
            ("a".to_owned(), b"1".to_vec()),
            ("b".to_owned(), b"2".to_vec()),
        ]);
        let mut files = Files::new();
        let items = vec![core::KeyToPath {
            key: "b".into(),
            path: "sub/bee".into(),
            mode: Some(0o600),
        }];
        key_files("cm", &data, Some(&items), 0o644, &mut files).expect("files");
        assert_eq!(
            files,
            Files::from([("sub/bee".into(), (b"2".to_vec(), 0o600))])
        );
        let mut all = Files::new();
        key_files("cm", &data, None, 0o640, &mut all).expect("files");
        assert_eq!(all.len(), 2);
        let missing = vec![core::KeyToPath {
            key: "zz".into(),
            path: "z".into(),
            mode: None,
        }];
        assert!(matches!(
            key_files("cm", &data, Some(&missing), 0o644, &mut Files::new()),
            Err(VolumeError::Key { .. })
        ));
        let escape = vec![core::KeyToPath {
            key: "a".into(),
            path: "../x".into(),
            mode: None,
        }];
        assert!(matches!(
            key_files("cm", &data, Some(&escape), 0o644, &mut Files::new()),
            Err(VolumeError::Path(_))
        ));
    }
}
