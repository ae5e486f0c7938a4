//! ferry's control loops above the nodes.
//!
//! So far: [`gitops`], the GitOps source and sync engine (issue #4). The scheduler, the
//! workload controllers, Endpoints, node lifecycle, garbage collection and namespace deletion
//! come in later issues.

pub mod gitops;
