//! `Source`: a Git repository (or a plain directory) that ferry follows, and how far it got.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A repository or directory of manifests that ferry keeps the cluster in step with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.ferry.v1.Source")]
pub struct Source {
    /// `ferry.dev/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Source`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What to follow.
    pub spec: SourceSpec,
    /// How far the sync got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<SourceStatus>,
}

/// Whether a source is a Git repository or a plain directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.SourceKind")]
pub enum SourceKind {
    /// A Git repository, read with gix; revisions are commits.
    #[default]
    Git,
    /// A plain directory watched for changes; revisions are content hashes.
    Directory,
}

/// What a source follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.SourceSpec")]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// Git repository or directory.
    #[serde(default, rename = "type")]
    pub kind: SourceKind,
    /// Local path, `file://`, `https://` or `ssh://` URL.
    pub url: String,
    /// Branch to follow (default: the repository's HEAD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Tag to follow instead of a branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A pinned commit to apply instead of following a ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Sub-path of the repository holding the manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Poll interval for remote repositories, e.g. `15s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Delete objects this source applied before and the commit no longer has (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    /// Allow a commit that would delete every object of the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_empty: Option<bool>,
    /// Revert drift of live objects from the applied commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_heal: Option<bool>,
    /// Roll a Degraded revision back to the last Healthy one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_rollback: Option<bool>,
}

/// Whether the live objects match the applied commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.SyncState")]
pub enum SyncState {
    /// Not yet known.
    #[default]
    Unknown,
    /// The live objects match the applied commit.
    Synced,
    /// Some live objects differ from the applied commit.
    OutOfSync,
}

/// The health of what a source applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.SourceHealth")]
pub enum SourceHealth {
    /// Not yet known.
    #[default]
    Unknown,
    /// Still rolling out.
    Progressing,
    /// Everything is available, complete or ready.
    Healthy,
    /// Something failed or timed out.
    Degraded,
}

/// A live object that differs from the applied commit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.DriftedObject")]
#[serde(rename_all = "camelCase")]
pub struct DriftedObject {
    /// `apiVersion` of the object.
    pub api_version: String,
    /// Kind of the object.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name of the object.
    pub name: String,
    /// JSON pointers of the differing fields.
    #[serde(default)]
    pub fields: Vec<String>,
}

/// How far a source got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.SourceStatus")]
#[serde(rename_all = "camelCase")]
pub struct SourceStatus {
    /// The newest commit seen on the followed ref.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_commit: Option<String>,
    /// The commit the cluster is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_commit: Option<String>,
    /// A commit a rollback pinned the source to, until a newer commit arrives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_commit: Option<String>,
    /// The head the source was on when it was pinned: a head other than this unpins it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned_head: Option<String>,
    /// Name of the Revision of the last sync attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_revision: Option<String>,
    /// Synced or OutOfSync.
    #[serde(default)]
    pub sync: SyncState,
    /// Health of the applied commit.
    #[serde(default)]
    pub health: SourceHealth,
    /// Objects that drifted from the applied commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<DriftedObject>,
    /// When the source was last fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetch_time: Option<Time>,
    /// A human-readable reason for the current state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
