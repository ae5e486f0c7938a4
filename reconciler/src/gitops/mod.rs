//! GitOps: a source (Git repository or directory) followed commit by commit; each commit
//! validated whole, applied as one transaction, audited as a `Revision`, and followed to health.

pub mod checkout;
pub mod cluster;
pub mod controller;
pub mod diff;
pub mod directory;
pub mod drift;
pub mod drift_watch;
pub mod git;
pub mod health;
pub mod manifests;
pub mod remote;
pub mod webhook;
pub mod worker;
