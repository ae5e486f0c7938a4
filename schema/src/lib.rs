//! ferry's object model and manifest validation.
//!
//! This crate owns what a manifest *is* for ferry: the API types of every kind in scope
//! (Kubernetes' own through `k8s-openapi`, pinned to 1.33, plus ferry's `ferry.dev/v1` kinds),
//! the loader that turns YAML and JSON files into objects, the JSON Schemas of every kind (in a
//! normal and a strict flavour, generated from the types), and the validator behind
//! `ferry validate`, which the GitOps sync reuses to check a commit as a whole.

pub mod catalog;
pub mod cron;
pub mod duration;
pub mod events;
pub mod ferry;
pub mod generate;
pub mod intstr;
pub mod kinds;
pub mod loader;
pub mod merge;
pub mod node_selector;
pub mod pointer;
pub mod position;
pub mod quantity;
pub mod quota;
pub mod rules;
pub mod run;
pub mod scalar;
pub mod selector;
pub mod structural;
pub mod validate;

pub use k8s_openapi;
