//! The audit trail as a typed library: what `ferry history`, `show`, `diff`, `sync`,
//! `rollback` and `status` ask of a running ferry. The CLI parses arguments and prints; the
//! questions are answered here.
//!
//! - [`record`]: a `Revision` flattened into one [`AuditRecord`].
//! - [`query`]: history (by source, by changed object: a field selector the apiserver answers),
//!   one revision by name or commit, the sources.
//! - [`compare`]: a commit's manifests against the live objects, or two commits.
//! - [`request`]: `sync` and `rollback` requests left on a Source, and waiting for the
//!   `Revision` that answers them.

pub mod compare;
pub mod query;
pub mod record;
pub mod request;

pub use record::{AuditChange, AuditRecord};

use crate::gitops::cluster::ClusterError;

/// What an audit question can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The apiserver refused or could not be reached.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    /// `--object` is not `KIND/NAMESPACE/NAME` or `KIND/NAME`.
    #[error("--object takes KIND/NAMESPACE/NAME or KIND/NAME, not {0:?}")]
    ObjectName(String),
    /// No such source.
    #[error("there is no source {0:?}")]
    NoSource(String),
    /// No source at all.
    #[error("there are no sources")]
    NoSources,
    /// Several sources and none named.
    #[error("there are several sources ({0}): name one")]
    SeveralSources(String),
    /// Neither a revision name nor a commit in the audit.
    #[error("no revision or commit {0:?} in the audit")]
    NotInAudit(String),
    /// The source's spec does not parse.
    #[error("the spec of source {source_name} is invalid: {reason}")]
    InvalidSource {
        /// The source.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// `ferry diff` needs the repository on this machine.
    #[error(
        "ferry diff reads the repository on this machine; source {source_name} is remote ({url}): clone it and diff there, or use ferry show"
    )]
    RemoteSource {
        /// The source.
        source_name: String,
        /// Its URL.
        url: String,
    },
    /// The repository could not be opened or read.
    #[error("source {source_name}: {reason}")]
    Checkout {
        /// The source.
        source_name: String,
        /// Why.
        reason: String,
    },
    /// No `Revision` answered a request in time.
    #[error("no answer from source {source_name} within {seconds}s (is ferry up running?)")]
    NoAnswer {
        /// The source.
        source_name: String,
        /// The wait.
        seconds: u64,
    },
}
