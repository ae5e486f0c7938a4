//! The scheduler: gives every pod without a node one, as kube-scheduler does.
//!
//! - [`pod_info`] reads what a pod asks for once; [`resources`] sums requests exactly.
//! - [`cache`] holds every node with the pods on it, bound or assumed.
//! - [`filter`] and [`score`] are kube-scheduler's default plugins; [`algorithm`] makes one
//!   decision over a sample of the nodes and explains a pod that fits nowhere.
//! - [`queue`] orders pending pods by priority then age, with back-off.
//! - [`preempt`] finds lower-priority pods to evict for a pod that fits nowhere.
//! - [`run`] is the loop: watches pods and nodes with kube-runtime's watcher, binds through
//!   `pods/binding`, writes `PodScheduled` conditions and Events, and counts what it does
//!   ([`metrics`]).

pub mod algorithm;
pub mod cache;
pub mod filter;
pub mod metrics;
pub mod pod_info;
pub mod preempt;
pub mod queue;
pub mod resources;
pub mod run;
pub mod score;

pub use run::Scheduler;

/// The scheduler name pods get by default.
pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

#[cfg(test)]
mod tests;
