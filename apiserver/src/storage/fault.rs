//! Fault injection for crash tests: a point inside the write transaction where the writer can
//! be made to stop, so that a test kills the process *inside* a transaction and knows it did.
//!
//! The point is off unless the operator of a test turns it on (the binary reads
//! `FERRY_FAULT_PAUSE_BEFORE_COMMIT=MIN_CHANGES:MARKER_FILE`). When a batch of at least
//! `MIN_CHANGES` changes has been written but not committed, the writer creates the marker
//! file and waits forever; the test waits for the file, then kills the process.

use std::path::PathBuf;

/// Where the writer pauses; `None` fields mean never.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Pause before committing a batch of at least this many changes, after creating the file.
    pub pause_before_commit: Option<(usize, PathBuf)>,
}

/// A fault specification that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("a fault point is MIN_CHANGES:MARKER_FILE, not {0:?}")]
pub struct FaultSpecError(String);

impl Faults {
    /// Parses `MIN_CHANGES:MARKER_FILE`.
    pub fn pause_before_commit(spec: &str) -> Result<Faults, FaultSpecError> {
        let (count, path) = spec
            .split_once(':')
            .ok_or_else(|| FaultSpecError(spec.to_owned()))?;
        let count = count
            .parse::<usize>()
            .map_err(|_| FaultSpecError(spec.to_owned()))?;
        if path.is_empty() {
            return Err(FaultSpecError(spec.to_owned()));
        }
        Ok(Faults {
            pause_before_commit: Some((count, PathBuf::from(path))),
        })
    }

    /// Called with a batch written and not committed: pauses forever when the point is armed
    /// and the batch is large enough.
    pub(super) async fn before_commit(&self, changes: usize) {
        let Some((min, marker)) = &self.pause_before_commit else {
            return;
        };
        if changes < *min {
            return;
        }
        tracing::warn!(changes, marker = %marker.display(), "fault point: pausing inside the write transaction");
        // Written aside and renamed into place: whoever sees the file sees its content.
        let aside = marker.with_extension("writing");
        if let Err(e) = std::fs::write(&aside, changes.to_string())
            .and_then(|()| std::fs::rename(&aside, marker))
        {
            tracing::error!(error = %e, "fault point: the marker file could not be written");
        }
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_or_are_refused() {
        let f = Faults::pause_before_commit("1000:/tmp/x").expect("valid");
        assert_eq!(f.pause_before_commit, Some((1000, PathBuf::from("/tmp/x"))));
        for bad in ["", "1000", "x:/tmp/x", "10:"] {
            assert!(Faults::pause_before_commit(bad).is_err(), "{bad}");
        }
    }
}
