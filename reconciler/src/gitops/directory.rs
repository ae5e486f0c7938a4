//! A plain directory as a source: its revisions are named by a hash of its manifests (paths
//! and contents), so an unchanged directory is an unchanged revision. Changes are noticed by
//! watching the directory.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::checkout::{
    Checkout, CheckoutError, CommitInfo, MAX_FILE_BYTES, ManifestFile, Snapshot, file_finding,
    is_manifest,
};

/// A directory of manifests on this machine.
#[derive(Debug, Clone)]
pub struct DirectoryCheckout {
    root: PathBuf,
}

impl DirectoryCheckout {
    /// A directory source rooted at `root` (which must exist).
    pub fn open(root: &Path) -> Result<DirectoryCheckout, CheckoutError> {
        let root = root.canonicalize().map_err(|e| CheckoutError::Open {
            path: root.display().to_string(),
            message: e.to_string(),
        })?;
        if !root.is_dir() {
            return Err(CheckoutError::Open {
                path: root.display().to_string(),
                message: "not a directory".into(),
            });
        }
        Ok(DirectoryCheckout { root })
    }

    fn load(&self, known: &HashSet<String>) -> Result<Snapshot, CheckoutError> {
        let mut snapshot = Snapshot::default();
        let mut pending = vec![self.root.clone()];
        while let Some(dir) = pending.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| CheckoutError::Read {
                what: dir.display().to_string(),
                message: e.to_string(),
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                let relative = path
                    .strip_prefix(&self.root)
                    .map(|p| p.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                if relative.split('/').any(|p| p.starts_with('.')) {
                    continue;
                }
                let Ok(file_type) = entry.file_type() else {
                    continue;
                };
                if file_type.is_dir() {
                    pending.push(path);
                    continue;
                }
                if !is_manifest(&relative) {
                    continue;
                }
                if file_type.is_symlink() {
                    let inside = path
                        .canonicalize()
                        .is_ok_and(|target| target.starts_with(&self.root) && target.is_file());
                    if !inside {
                        snapshot.refused.push(file_finding(
                            &relative,
                            "the symlink points outside the directory, or not at a file",
                        ));
                        continue;
                    }
                }
                let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                if size > MAX_FILE_BYTES {
                    snapshot.refused.push(file_finding(
                        &relative,
                        format!("the file is {size} bytes, over the limit of {MAX_FILE_BYTES}"),
                    ));
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|e| CheckoutError::Read {
                    what: relative.clone(),
                    message: e.to_string(),
                })?;
                let digest = Sha256::digest(&bytes);
                let id: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
                snapshot.files.push(ManifestFile {
                    path: relative,
                    id,
                    bytes,
                });
            }
        }
        snapshot.files.sort_by(|a, b| a.path.cmp(&b.path));
        let mut hash = Sha256::new();
        for file in &snapshot.files {
            hash.update(file.path.as_bytes());
            hash.update([0]);
            hash.update(file.id.as_bytes());
        }
        for refused in &snapshot.refused {
            hash.update(refused.file.as_deref().unwrap_or_default().as_bytes());
        }
        let digest = hash.finalize();
        // 160 bits, written like a Git SHA (and short enough for a label value).
        snapshot.id = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
        snapshot.info = CommitInfo::default();
        for file in &mut snapshot.files {
            if known.contains(&file.id) {
                file.bytes = Vec::new();
            }
        }
        Ok(snapshot)
    }
}

impl Checkout for DirectoryCheckout {
    fn fetch(&self) -> Result<(), CheckoutError> {
        Ok(())
    }

    fn head(&self) -> Result<String, CheckoutError> {
        Ok(self.load(&HashSet::new())?.id)
    }

    fn resolve(&self, revision: &str) -> Result<String, CheckoutError> {
        let current = self.load(&HashSet::new())?.id;
        if revision == "HEAD" || (!revision.is_empty() && current.starts_with(revision)) {
            Ok(current)
        } else {
            Err(CheckoutError::Resolve {
                reference: revision.to_owned(),
                message: "a directory source only has its current content".into(),
            })
        }
    }

    fn snapshot(&self, _id: &str, known: &HashSet<String>) -> Result<Snapshot, CheckoutError> {
        self.load(known)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.root.clone()]
    }

    fn is_remote(&self) -> bool {
        false
    }

    fn settle(&self) -> std::time::Duration {
        std::time::Duration::from_millis(150)
    }
}
