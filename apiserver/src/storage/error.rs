//! The storage layer's errors, and the policy for each.
//!
//! - `NotFound`, `AlreadyExists`, `Conflict`: the caller's preconditions failed; nothing was
//!   written; the API answers 404 / 409.
//! - `Terminating`: an object was to be created in a namespace being deleted; nothing was
//!   written; the API answers 403.
//! - `Expired`: a watch or list asked for a revision the change log no longer holds; 410.
//! - `Unavailable`: the database could not be reached or failed mid-transaction; nothing was
//!   written (the transaction rolled back); the API answers 503 and the client retries.
//! - `Corrupt`: a stored body is not JSON; a bug or tampering, reported, never papered over.

use super::key::ObjectKey;

/// What went wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(ObjectKey),
    /// The namespace a new object was to go in is being deleted; nothing was written.
    #[error("namespace {0} is being terminated")]
    Terminating(ObjectKey),
    /// The object exists already.
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    /// The object changed since the revision the caller read.
    #[error("{key} was modified: expected revision {expected}, found {found}")]
    Conflict {
        /// The object.
        key: ObjectKey,
        /// The revision the caller expected.
        expected: i64,
        /// The revision stored.
        found: i64,
    },
    /// The requested revision is older than the change log holds.
    #[error("revision {requested} is compacted (oldest available: {oldest})")]
    Expired {
        /// What was asked for.
        requested: i64,
        /// The oldest revision still available.
        oldest: i64,
    },
    /// The database is unreachable or failed; nothing was written.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored body is not valid JSON.
    #[error("stored object {0} is corrupt: {1}")]
    Corrupt(ObjectKey, String),
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        StorageError::Unavailable(error.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StorageError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StorageError::Unavailable(format!("migration failed: {error}"))
    }
}
