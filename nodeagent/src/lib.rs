//! ferry's node agent, the kubelet side.
//!
//! - [`config`]: a node as the command line describes it (name, labels, taints, capacity).
//! - [`node`]: the Node object it registers, with capacity, addresses and conditions.
//! - [`heartbeat`]: Lease renewal in `kube-node-lease` for every node of the process.
//! - [`runtime`]: the container runtime trait, shaped like CRI v1, and its `sim` back end (a
//!   hollow node: no processes). The `process` and `cri` back ends come with the real-pods
//!   issue.
//! - [`worker`]: one pod's lifecycle on its node (an explicit state machine), and the status
//!   it writes as the kubelet writes it.
//! - [`agent`]: the nodes of one process (one, or `--count N` hollow ones) sharing one client,
//!   one watch of the pods bound to them and one heartbeat loop.

pub mod agent;
pub mod config;
pub mod heartbeat;
pub mod node;
pub mod runtime;
pub mod worker;
