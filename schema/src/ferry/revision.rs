//! `Revision`: one sync attempt of one commit, the audit record ferry keeps for ever.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One sync attempt of one commit of one source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "dev.ferry.v1.Revision")]
pub struct Revision {
    /// `ferry.dev/v1`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `Revision`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// Standard object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// What was attempted.
    pub spec: RevisionSpec,
    /// How it went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RevisionStatus>,
}

/// What started a sync attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.Trigger")]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// A ref or file watch noticed the commit.
    #[default]
    Watch,
    /// A poll of a remote repository.
    Poll,
    /// A webhook from the Git host.
    Webhook,
    /// `ferry sync`.
    Manual,
    /// `ferry rollback` or auto-rollback.
    Rollback,
    /// Drift was reverted.
    SelfHeal,
}

/// A commit's author or committer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.CommitPerson")]
pub struct CommitPerson {
    /// Name.
    pub name: String,
    /// E-mail address.
    pub email: String,
    /// When.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// What a sync attempt was about.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.RevisionSpec")]
#[serde(rename_all = "camelCase")]
pub struct RevisionSpec {
    /// Name of the Source.
    pub source: String,
    /// The commit SHA (or content hash for a directory source).
    pub commit: String,
    /// Parent commits.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// Author of the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<CommitPerson>,
    /// Committer of the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committer: Option<CommitPerson>,
    /// The commit message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// What started the attempt.
    pub trigger: Trigger,
    /// Who asked, for manual actions and rollbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Why, for rollbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For rollbacks: the commit the cluster was on before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_from: Option<String>,
}

/// The outcome of a sync attempt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.RevisionResult")]
pub enum RevisionResult {
    /// Still being validated or applied.
    #[default]
    Pending,
    /// Applied as one transaction.
    Applied,
    /// Refused whole by validation or admission: nothing applied.
    Rejected,
    /// Could not be applied (storage error, conflict): nothing applied.
    Failed,
    /// A newer commit arrived first.
    Superseded,
}

/// The health of an applied revision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.RevisionHealth")]
pub enum RevisionHealth {
    /// Not applied, or not yet followed.
    #[default]
    Unknown,
    /// Rolling out.
    Progressing,
    /// Everything became available, complete or ready.
    Healthy,
    /// Something failed or did not become healthy in time.
    Degraded,
}

/// A reason a commit was refused, with where it was found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.RevisionFinding")]
pub struct RevisionFinding {
    /// File within the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    /// `Kind namespace/name` of the object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// JSON pointer of the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// What happened to one object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.ChangeAction")]
pub enum ChangeAction {
    /// Created.
    #[default]
    Create,
    /// Updated.
    Update,
    /// Deleted (pruned).
    Delete,
}

/// An object a revision touched.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.ObjectRef")]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// `apiVersion`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, empty for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// One object's change in a revision.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.ObjectChange")]
pub struct ObjectChange {
    /// Create, update or delete.
    pub action: ChangeAction,
    /// The object.
    pub object: ObjectRef,
    /// A unified diff of the object (Secret values redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// How a sync attempt went.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(rename = "dev.ferry.v1.RevisionStatus")]
#[serde(rename_all = "camelCase")]
pub struct RevisionStatus {
    /// Applied, Rejected, Failed or Superseded.
    pub result: RevisionResult,
    /// Health after apply.
    #[serde(default)]
    pub health: RevisionHealth,
    /// When the attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    /// When the attempt finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// When health was reached (Healthy or Degraded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_changed: Option<Time>,
    /// Why the commit was refused or failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<RevisionFinding>,
    /// Per-object changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<ObjectChange>,
}
