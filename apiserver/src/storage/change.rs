//! A committed change: what the change log holds and what watches deliver.

use std::sync::Arc;

use serde_json::Value;

use super::key::ObjectKey;

/// The kind of change, named as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted; the object is its last state, at the deletion's revision.
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }

    /// Parses what [`EventType::as_str`] writes.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "ADDED" => Some(EventType::Added),
            "MODIFIED" => Some(EventType::Modified),
            "DELETED" => Some(EventType::Deleted),
            _ => None,
        }
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The global revision it was committed at.
    pub revision: i64,
    /// Added, modified or deleted.
    pub event: EventType,
    /// Which object.
    pub key: ObjectKey,
    /// The object after the change (for a delete: its last state), resourceVersion set.
    pub object: Arc<Value>,
    /// `object` as JSON text: encoded once, for the change log, the object's row, the
    /// response to the write and every watcher that sends the object as it is.
    pub body: Arc<str>,
    /// For an update that changed the object's labels or a selectable field: the object as it
    /// was before. `None` for creates, deletes, and updates whose selection cannot differ.
    pub previous: Option<Arc<Value>>,
}

impl Change {
    /// Whether an object passing `filter` passed it before this change: for an update without a
    /// recorded previous state (its labels and selectable fields did not change), the same as
    /// now.
    pub fn passed_before(&self, filter: impl Fn(&Value) -> bool) -> bool {
        match (self.event, &self.previous) {
            (EventType::Added, _) => false,
            (EventType::Modified, Some(previous)) => filter(previous),
            (EventType::Modified | EventType::Deleted, None) | (EventType::Deleted, Some(_)) => {
                filter(&self.object)
            }
        }
    }
}
