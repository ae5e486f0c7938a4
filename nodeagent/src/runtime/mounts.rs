//! A container's mounts for the `process` runtime: as root, the container's first process
//! enters a mount namespace of its own (private propagation) in which each volume is
//! bind-mounted at its `mountPath` (read-only where asked); it then starts in its working
//! directory. A `mountPath` missing on the host is created there (empty) to mount onto;
//! nothing is mounted on the host itself. This module plans the steps; `entry.rs` makes them
//! in the child between fork and exec.

use std::path::{Path, PathBuf};

/// One bind mount.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mount {
    /// What is mounted (a directory or file on the host).
    pub source: PathBuf,
    /// Where the container sees it.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// One step of making a container's mounts, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Make this directory if it is missing (its parent exists by then).
    Dir(PathBuf),
    /// Make this empty file if nothing is there.
    File(PathBuf),
    /// Bind-mount `source` at `target`.
    Bind {
        /// The host's directory or file.
        source: PathBuf,
        /// Where the container sees it.
        target: PathBuf,
    },
    /// Make the mount at this place read-only.
    ReadOnly(PathBuf),
}

/// Every directory from the root down to `dir`, as `mkdir -p` makes them.
fn directories(dir: &Path, out: &mut Vec<Step>) {
    let mut place = PathBuf::new();
    for part in dir.components() {
        place.push(part);
        if place.parent().is_some() && !out.contains(&Step::Dir(place.clone())) {
            out.push(Step::Dir(place.clone()));
        }
    }
}

/// The steps that put `mounts` in place: for each, the mount point (a directory for a
/// directory, an empty file for a file, with the directories above it), the bind mount, and
/// the read-only remount where asked.
pub fn plan(mounts: &[Mount]) -> Vec<Step> {
    let mut out = Vec::new();
    for m in mounts {
        let target = PathBuf::from(&m.target);
        if m.source.is_dir() {
            directories(&target, &mut out);
        } else {
            if let Some(parent) = target.parent() {
                directories(parent, &mut out);
            }
            out.push(Step::File(target.clone()));
        }
        out.push(Step::Bind {
            source: m.source.clone(),
            target: target.clone(),
        });
        if m.read_only {
            out.push(Step::ReadOnly(target));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_to_mount_plans_nothing() {
        assert!(plan(&[]).is_empty());
    }

    #[test]
    fn a_directory_is_made_bound_then_made_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mounts = [Mount {
            source: dir.path().to_owned(),
            target: "/srv/it's".into(),
            read_only: true,
        }];
        assert_eq!(
            plan(&mounts),
            [
                Step::Dir("/srv".into()),
                Step::Dir("/srv/it's".into()),
                Step::Bind {
                    source: dir.path().to_owned(),
                    target: "/srv/it's".into()
                },
                Step::ReadOnly("/srv/it's".into()),
            ]
        );
    }

    #[test]
    fn a_file_gets_an_empty_file_to_mount_onto_and_shared_parents_are_made_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 localhost\n").expect("hosts");
        let mounts = [
            Mount {
                source: hosts.clone(),
                target: "/etc/hosts".into(),
                read_only: false,
            },
            Mount {
                source: dir.path().to_owned(),
                target: "/etc/app".into(),
                read_only: false,
            },
        ];
        assert_eq!(
            plan(&mounts),
            [
                Step::Dir("/etc".into()),
                Step::File("/etc/hosts".into()),
                Step::Bind {
                    source: hosts,
                    target: "/etc/hosts".into()
                },
                Step::Dir("/etc/app".into()),
                Step::Bind {
                    source: dir.path().to_owned(),
                    target: "/etc/app".into()
                },
            ]
        );
    }
}
