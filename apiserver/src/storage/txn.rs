//! Write operations, alone or many in one all-or-nothing transaction.

use serde_json::Value;

use super::key::ObjectKey;

/// One write, with its precondition.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Create; fails with AlreadyExists if the object exists.
    Create {
        /// Which object.
        key: ObjectKey,
        /// Its body (resourceVersion is set by storage).
        object: Value,
    },
    /// Replace; fails with NotFound if absent, Conflict if `expected` is set and differs.
    Update {
        /// Which object.
        key: ObjectKey,
        /// Its new body.
        object: Value,
        /// The revision the caller read, for optimistic concurrency.
        expected: Option<i64>,
    },
    /// Delete; fails with NotFound if absent, Conflict if `expected` is set and differs.
    Delete {
        /// Which object.
        key: ObjectKey,
        /// The revision the caller read.
        expected: Option<i64>,
    },
    /// A precondition only: the object must exist (e.g. the namespace of a new object) and
    /// not be marked for deletion; fails with NotFound otherwise. Writes nothing.
    Require {
        /// Which object.
        key: ObjectKey,
    },
}

impl WriteOp {
    /// The object the operation is about.
    pub fn key(&self) -> &ObjectKey {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. }
            | WriteOp::Require { key } => key,
        }
    }
}
