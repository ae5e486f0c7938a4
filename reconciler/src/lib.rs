//! ferry's control loops above the nodes (not built yet: issues #4 and later).
//!
//! It will own the GitOps source and sync engine (gix, notify; each commit validated with
//! `ferry-schema` and applied as one transaction, audited as a `Revision`), the scheduler, the
//! workload controllers (Deployment, ReplicaSet, DaemonSet, StatefulSet, Job, CronJob),
//! Endpoints/EndpointSlices, node lifecycle, garbage collection and namespace deletion, all as
//! kube-rs controllers. Nothing here works yet, and nothing pretends to.
