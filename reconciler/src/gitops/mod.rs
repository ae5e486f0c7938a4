//! GitOps: a source (Git repository or directory) followed commit by commit; each commit
//! validated whole, applied as one transaction, audited as a `Revision`, and followed to health.
//!
//! - [`checkout`]: what a source yields ([`git`], [`remote`], [`directory`] implement it).
//! - [`manifests`]: a snapshot's files to the objects a commit wants (cached by content),
//!   each kept as a compact [`manifest`].
//! - [`worker`]: one source's sync loop (triggers, attempts, rollback and pinning, health,
//!   drift, self-heal); [`controller`] runs a worker per `Source` object.
//! - [`cluster`]: the cluster through the `kube` client, including the multi-object
//!   transaction; [`health`], [`drift`], [`drift_watch`], [`diff`], [`webhook`]: the rules.

pub mod checkout;
pub mod cluster;
pub mod controller;
pub mod diff;
pub mod directory;
pub mod drift;
pub mod drift_watch;
pub mod durable;
pub mod git;
pub mod health;
pub mod manifest;
pub mod manifests;
pub mod remote;
pub mod webhook;
pub mod worker;
