//! A committed change: what the change log holds, what the writer answers and observers see
//! (a [`Change`]), and what watches deliver (a [`Notice`]).

use std::sync::Arc;

use serde_json::Value;

use super::error::StorageError;
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

/// A committed change as watches receive it: the object as its stored text and, parsed, only
/// the part selectors read.
///
/// The hub keeps each notice until every watch has taken it, and a watch that falls behind
/// (its client reads slowly) holds up to the hub's capacity of them. Holding whole parsed
/// objects there kept tens of thousands of small maps alive while the caches of the
/// controllers were filling, and left the allocator's pages fragmented long after (issue #9).
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// The global revision it was committed at.
    pub revision: i64,
    /// Added, modified or deleted.
    pub event: EventType,
    /// Which object.
    pub key: ObjectKey,
    /// The object after the change (for a delete: its last state) as JSON text, resourceVersion
    /// set.
    pub body: Arc<str>,
    /// What selectors read of the object ([`ferry_schema::selector::selectable`]).
    pub selection: Value,
    /// For an update that changed the object's labels or a selectable field: the object as it
    /// was before.
    pub previous: Option<Before>,
}

/// An object's state before a change that changed its selection.
#[derive(Debug, Clone, PartialEq)]
pub struct Before {
    /// As JSON text.
    pub body: String,
    /// What selectors read of it.
    pub selection: Value,
}

impl Notice {
    /// The notice of a committed change.
    pub fn of(change: &Change) -> Notice {
        Notice {
            revision: change.revision,
            event: change.event,
            key: change.key.clone(),
            body: change.body.clone(),
            selection: ferry_schema::selector::selectable(&change.object),
            previous: change.previous.as_ref().map(|p| Before {
                body: p.to_string(),
                selection: ferry_schema::selector::selectable(p),
            }),
        }
    }

    /// The object, parsed from its text.
    pub fn object(&self) -> Result<Value, StorageError> {
        serde_json::from_str(&self.body)
            .map_err(|e| StorageError::Corrupt(self.key.clone(), e.to_string()))
    }

    /// Whether an object passing `filter` passed it before this change: for an update without a
    /// recorded previous state (its labels and selectable fields did not change), the same as
    /// now.
    pub fn passed_before(&self, filter: impl Fn(&Value) -> bool) -> bool {
        match (self.event, &self.previous) {
            (EventType::Added, _) => false,
            (EventType::Modified, Some(previous)) => filter(&previous.selection),
            (EventType::Modified | EventType::Deleted, None) | (EventType::Deleted, Some(_)) => {
                filter(&self.selection)
            }
        }
    }
}
