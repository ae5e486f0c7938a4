//! ferry's control loops above the nodes.
//!
//! So far: [`gitops`], the GitOps source and sync engine (issue #4), and [`audit`], the
//! questions the CLI asks of its audit trail. The scheduler, the
//! workload controllers, Endpoints, node lifecycle, garbage collection and namespace deletion
//! come in later issues.

pub mod audit;
pub mod controllers;
pub mod gitops;
pub mod kinds;
pub mod lifecycle;
pub mod scheduler;
