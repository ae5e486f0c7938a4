//! What a source yields: the revision its followed ref points at now, and the manifests of any
//! revision (a [`Snapshot`]). Git repositories ([`super::git`]) and plain directories
//! ([`super::directory`]) implement [`Checkout`]; the sync engine sees only this trait.

use std::collections::HashSet;
use std::path::PathBuf;

use ferry_schema::ferry::{CommitPerson, RevisionFinding};

/// Files larger than this are refused with a reason (the whole revision is refused).
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024;

/// Why a source could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// The repository or directory is not there or not readable.
    #[error("cannot open {path}: {message}")]
    Open {
        /// Where.
        path: String,
        /// Why.
        message: String,
    },
    /// The followed branch, tag or commit does not resolve.
    #[error("cannot resolve {reference}: {message}")]
    Resolve {
        /// The ref.
        reference: String,
        /// Why.
        message: String,
    },
    /// An object of the repository could not be read.
    #[error("cannot read {what}: {message}")]
    Read {
        /// What.
        what: String,
        /// Why.
        message: String,
    },
    /// Fetching from the remote failed.
    #[error("cannot fetch {url}: {message}")]
    Fetch {
        /// The remote.
        url: String,
        /// Why.
        message: String,
    },
}

/// Who and what of a revision (empty for directory sources).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommitInfo {
    /// Parent commits.
    pub parents: Vec<String>,
    /// Author.
    pub author: Option<CommitPerson>,
    /// Committer.
    pub committer: Option<CommitPerson>,
    /// Message.
    pub message: Option<String>,
}

/// One manifest file of a revision.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestFile {
    /// Path relative to the source's sub-path, `/`-separated.
    pub path: String,
    /// The content's identity: the Git blob id, or a hash of a directory file's bytes.
    pub id: String,
    /// Its bytes; empty when the caller already knew this content (its id was `known`).
    pub bytes: Vec<u8>,
}

/// A revision's manifests: every `.yaml`, `.yml` and `.json` under the sub-path, in path order,
/// and the files refused (with why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The commit SHA or directory content hash.
    pub id: String,
    /// Commit metadata.
    pub info: CommitInfo,
    /// The manifest files, sorted by path.
    pub files: Vec<ManifestFile>,
    /// Files refused while loading (too large, a symlink out of the repository, ...).
    pub refused: Vec<RevisionFinding>,
}

/// A source of manifests.
pub trait Checkout: Send + Sync {
    /// Brings a remote copy up to date (a no-op for local sources).
    fn fetch(&self) -> Result<(), CheckoutError>;
    /// The revision the followed ref points at now.
    fn head(&self) -> Result<String, CheckoutError>;
    /// The full id of a revision given by a prefix, a branch or tag name, or `HEAD`.
    fn resolve(&self, revision: &str) -> Result<String, CheckoutError>;
    /// The manifests of a revision (for a directory: its current content, whose hash must be
    /// `id`, else the directory changed meanwhile and the snapshot has the new hash). Files
    /// whose content id is in `known` come without their bytes: the caller has them already.
    fn snapshot(&self, id: &str, known: &HashSet<String>) -> Result<Snapshot, CheckoutError>;
    /// Local paths whose changes mean the head may have moved (watched for changes).
    fn watch_paths(&self) -> Vec<PathBuf>;
    /// Whether the head can only be learnt by polling (a remote repository).
    fn is_remote(&self) -> bool;
    /// How long the watched paths must be quiet before a change is looked at (files being
    /// written are not read half-way; a Git ref moves atomically and needs no wait).
    fn settle(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Whether a path names a manifest file ferry loads.
pub fn is_manifest(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
}

/// A finding about a whole file.
pub fn file_finding(path: &str, message: impl Into<String>) -> RevisionFinding {
    RevisionFinding {
        file: Some(path.to_owned()),
        message: message.into(),
        ..RevisionFinding::default()
    }
}
