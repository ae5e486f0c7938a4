//! ferry's node agent, the kubelet side (not built yet: a later issue).
//!
//! It will own node registration and Lease heartbeats, pod workers, the runtime trait with its
//! `process`, `cri` and `sim` back ends, CNI, probes, logs, the device-plugin manager and the
//! service proxy. Nothing here works yet, and nothing pretends to.
