//! A Git repository as a source, read with gix: the followed ref (a branch, a tag, a pinned
//! commit or HEAD), the commit's metadata, and the manifests under a sub-path of its tree.
//!
//! Symlinks are followed only within the repository: one that points outside it (or at a
//! directory) is refused with a reason, as is a file over [`MAX_FILE_BYTES`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ferry_schema::ferry::CommitPerson;
use gix::bstr::ByteSlice;
use gix::objs::tree::EntryKind;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::checkout::{
    Checkout, CheckoutError, CommitInfo, MAX_FILE_BYTES, ManifestFile, Snapshot, file_finding,
    is_manifest,
};

/// What a Git source follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// The repository's HEAD.
    Head,
    /// A branch.
    Branch(String),
    /// A tag.
    Tag(String),
    /// One commit, for ever.
    Commit(String),
    /// A full ref name (e.g. a mirror's `refs/remotes/origin/HEAD`).
    Ref(String),
}

/// A Git repository on this machine.
pub struct GitCheckout {
    path: PathBuf,
    git_dir: PathBuf,
    follow: Follow,
    subpath: String,
}

impl std::fmt::Debug for GitCheckout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitCheckout")
            .field("git_dir", &self.git_dir)
            .field("follow", &self.follow)
            .field("subpath", &self.subpath)
            .finish()
    }
}

fn read_error(what: impl Into<String>) -> impl FnOnce(gix::Error) -> CheckoutError {
    let what = what.into();
    move |e| CheckoutError::Read {
        what,
        message: e.to_string(),
    }
}

/// Seconds since the epoch as a Kubernetes `Time`.
fn time_of(seconds: i64) -> Option<Time> {
    jiff::Timestamp::from_second(seconds).ok().map(Time)
}

fn person(signature: gix::actor::SignatureRef<'_>) -> CommitPerson {
    CommitPerson {
        name: signature.name.to_str_lossy().into_owned(),
        email: signature.email.to_str_lossy().into_owned(),
        time: signature.time().ok().and_then(|t| time_of(t.seconds)),
    }
}

/// Resolves `dir/target` inside the repository; `None` when it leaves it.
fn resolve_link(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for segment in target.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

impl GitCheckout {
    /// Opens the repository at `path` (a work tree or a bare repository).
    pub fn open(path: &Path, follow: Follow, subpath: &str) -> Result<GitCheckout, CheckoutError> {
        let repo = gix::open(path).map_err(|e| CheckoutError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let git_dir = repo.git_dir().to_path_buf();
        Ok(GitCheckout {
            path: path.to_path_buf(),
            git_dir,
            follow,
            subpath: subpath.trim_matches('/').to_owned(),
        })
    }

    /// Opens the repository afresh (gix's handles are not shared between threads).
    fn repository(&self) -> Result<gix::Repository, CheckoutError> {
        gix::open(&self.path).map_err(|e| CheckoutError::Open {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })
    }

    fn reference(&self) -> String {
        match &self.follow {
            Follow::Head => "HEAD".into(),
            Follow::Branch(b) => format!("refs/heads/{b}"),
            Follow::Tag(t) => format!("refs/tags/{t}"),
            Follow::Commit(c) | Follow::Ref(c) => c.clone(),
        }
    }

    /// Every manifest under the sub-path of `tree`, recursively.
    fn collect(
        &self,
        repo: &gix::Repository,
        root: &gix::Tree<'_>,
        snapshot: &mut Snapshot,
        known: &HashSet<String>,
    ) -> Result<(), CheckoutError> {
        let start = if self.subpath.is_empty() {
            root.id
        } else {
            match root
                .lookup_entry_by_path(&self.subpath)
                .map_err(read_error(format!("path {}", self.subpath)))?
            {
                Some(entry) if entry.mode().is_tree() => entry.object_id(),
                _ => {
                    snapshot.refused.push(file_finding(
                        &self.subpath,
                        format!(
                            "the path {:?} is not a directory in this commit",
                            self.subpath
                        ),
                    ));
                    return Ok(());
                }
            }
        };
        let mut pending = vec![(String::new(), start)];
        while let Some((dir, id)) = pending.pop() {
            let tree = repo
                .find_tree(id)
                .map_err(read_error(format!("tree {dir:?}")))?;
            let decoded = tree.decode().map_err(read_error(format!("tree {dir:?}")))?;
            for entry in &decoded.entries {
                let name = entry.filename.to_str_lossy();
                let path = if dir.is_empty() {
                    name.into_owned()
                } else {
                    format!("{dir}/{name}")
                };
                match entry.mode.kind() {
                    EntryKind::Tree => pending.push((path, entry.oid.to_owned())),
                    EntryKind::Blob | EntryKind::BlobExecutable if is_manifest(&path) => {
                        self.read_blob(repo, &path, entry.oid.to_owned(), snapshot, known)?;
                    }
                    EntryKind::Link if is_manifest(&path) => {
                        let link = (&dir[..], &path[..], entry.oid.to_owned());
                        self.follow_link(repo, root, link, snapshot, known)?;
                    }
                    _ => {}
                }
            }
        }
        snapshot.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(())
    }

    fn read_blob(
        &self,
        repo: &gix::Repository,
        path: &str,
        id: gix::ObjectId,
        snapshot: &mut Snapshot,
        known: &HashSet<String>,
    ) -> Result<(), CheckoutError> {
        let hex = id.to_string();
        if known.contains(&hex) {
            snapshot.files.push(ManifestFile {
                path: path.to_owned(),
                id: hex,
                bytes: Vec::new(),
            });
            return Ok(());
        }
        let header = repo
            .find_header(id)
            .map_err(read_error(format!("file {path}")))?;
        if header.size() > MAX_FILE_BYTES {
            snapshot.refused.push(file_finding(
                path,
                format!(
                    "the file is {} bytes, over the limit of {MAX_FILE_BYTES}",
                    header.size()
                ),
            ));
            return Ok(());
        }
        let blob = repo
            .find_object(id)
            .map_err(read_error(format!("file {path}")))?;
        snapshot.files.push(ManifestFile {
            path: path.to_owned(),
            id: hex,
            bytes: blob.data.clone(),
        });
        Ok(())
    }

    fn follow_link(
        &self,
        repo: &gix::Repository,
        root: &gix::Tree<'_>,
        link: (&str, &str, gix::ObjectId),
        snapshot: &mut Snapshot,
        known: &HashSet<String>,
    ) -> Result<(), CheckoutError> {
        let (dir, path, id) = link;
        let target_blob = repo
            .find_object(id)
            .map_err(read_error(format!("symlink {path}")))?;
        let target = target_blob.data.to_str_lossy().into_owned();
        let base = if self.subpath.is_empty() {
            dir.to_owned()
        } else if dir.is_empty() {
            self.subpath.clone()
        } else {
            format!("{}/{dir}", self.subpath)
        };
        let Some(resolved) = resolve_link(&base, &target) else {
            snapshot.refused.push(file_finding(
                path,
                format!("the symlink points outside the repository ({target})"),
            ));
            return Ok(());
        };
        match root
            .lookup_entry_by_path(&resolved)
            .map_err(read_error(format!("symlink {path}")))?
        {
            Some(entry) if entry.mode().is_blob() => {
                self.read_blob(repo, path, entry.object_id(), snapshot, known)
            }
            _ => {
                snapshot.refused.push(file_finding(
                    path,
                    format!("the symlink does not point at a file in the repository ({target})"),
                ));
                Ok(())
            }
        }
    }
}

impl Checkout for GitCheckout {
    fn fetch(&self) -> Result<(), CheckoutError> {
        Ok(())
    }

    fn head(&self) -> Result<String, CheckoutError> {
        self.resolve(&self.reference())
    }

    fn resolve(&self, reference: &str) -> Result<String, CheckoutError> {
        let repo = self.repository()?;
        let reference = reference.to_owned();
        let resolve = |e: gix::Error| CheckoutError::Resolve {
            reference: reference.clone(),
            message: e.to_string(),
        };
        let id = repo.rev_parse_single(reference.as_str()).map_err(resolve)?;
        let commit = id
            .object()
            .map_err(read_error(reference.clone()))?
            .peel_to_commit()
            .map_err(read_error(reference.clone()))?;
        Ok(commit.id.to_string())
    }

    fn snapshot(&self, id: &str, known: &HashSet<String>) -> Result<Snapshot, CheckoutError> {
        let repo = self.repository()?;
        let oid = gix::ObjectId::from_hex(id.as_bytes()).map_err(|e| CheckoutError::Resolve {
            reference: id.to_owned(),
            message: e.to_string(),
        })?;
        let commit = repo
            .find_commit(oid)
            .map_err(read_error(format!("commit {id}")))?;
        let decoded = commit
            .decode()
            .map_err(read_error(format!("commit {id}")))?;
        let info = CommitInfo {
            parents: decoded.parents().map(|p| p.to_string()).collect(),
            author: decoded.author().ok().map(person),
            committer: decoded.committer().ok().map(person),
            message: Some(decoded.message.to_str_lossy().trim_end().to_owned()),
        };
        let root = commit.tree().map_err(read_error(format!("commit {id}")))?;
        let mut snapshot = Snapshot {
            id: id.to_owned(),
            info,
            ..Snapshot::default()
        };
        self.collect(&repo, &root, &mut snapshot, known)?;
        Ok(snapshot)
    }

    fn watch_paths(&self) -> Vec<PathBuf> {
        vec![self.git_dir.clone()]
    }

    fn is_remote(&self) -> bool {
        false
    }
}

/// The work tree (or bare repository) enclosing `path`, and `path` relative to it
/// (`/`-separated); `None` when `path` is not inside a Git repository.
pub fn discover(path: &Path) -> Option<(PathBuf, String)> {
    let absolute = path.canonicalize().ok()?;
    let repo = gix::discover(&absolute).ok()?;
    let root = repo
        .workdir()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo.git_dir().to_path_buf())
        .canonicalize()
        .ok()?;
    let relative = absolute
        .strip_prefix(&root)
        .ok()?
        .to_string_lossy()
        .replace('\\', "/");
    Some((root, relative))
}

#[cfg(test)]
mod tests {
    use super::resolve_link;

    #[test]
    fn links_stay_inside() {
        assert_eq!(
            resolve_link("apps", "../base/a.yaml").as_deref(),
            Some("base/a.yaml")
        );
        assert_eq!(resolve_link("", "../etc/passwd"), None);
        assert_eq!(resolve_link("a", "/etc/passwd"), None);
        assert_eq!(
            resolve_link("a/b", "./c.yaml").as_deref(),
            Some("a/b/c.yaml")
        );
    }
}
