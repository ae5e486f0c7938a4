//! ferry's own kinds, in API group `ferry.dev/v1`: [`Source`] (a watched repository and its sync
//! state) and [`Revision`] (one sync attempt of one commit: the audit record).

mod revision;
mod source;

pub use revision::{
    ChangeAction, CommitPerson, ObjectChange, ObjectRef, Revision, RevisionFinding, RevisionHealth,
    RevisionResult, RevisionSpec, RevisionStatus, Trigger,
};
pub use source::{
    DriftedObject, Source, SourceHealth, SourceKind, SourceSpec, SourceStatus, SyncState,
};

/// The API group of ferry's kinds.
pub const GROUP: &str = "ferry.dev";
/// The API version of ferry's kinds.
pub const VERSION: &str = "v1";
/// `apiVersion` of ferry's kinds.
pub const API_VERSION: &str = "ferry.dev/v1";
