//! ferry's node agent, the kubelet side.
//!
//! - [`config`]: a node as the command line describes it (name, labels, taints, capacity).
//! - [`node`]: the Node object it registers, with capacity, addresses and conditions.
//! - [`heartbeat`]: Lease renewal in `kube-node-lease` for every node of the process.
//! - [`runtime`]: the container runtime trait, shaped like CRI v1, with its `sim` back end (a
//!   hollow node: no processes), `process` (containers as host processes) and `cri` (a CRI v1
//!   runtime such as containerd).
//! - [`worker`]: one pod's lifecycle on its node (an explicit state machine), and the status
//!   it writes as the kubelet writes it.
//! - [`agent`]: the nodes of one process (one, or `--count N` hollow ones) sharing one client,
//!   one watch of the pods bound to them and one heartbeat loop.
//! - [`logs`] and [`server`]: container logs read back from the CRI-format files, served on
//!   the node's kubelet endpoint for the apiserver's `pods/log`; [`remotecommand`] serves
//!   `exec` and `attach` there over WebSocket for its `pods/exec` and `pods/attach`, and
//!   [`portforward`] serves `kubectl port-forward` (SPDY/3.1) for its `pods/portforward`.

pub mod agent;
pub mod config;
pub mod heartbeat;
pub mod logs;
pub mod node;
pub mod portforward;
pub mod remotecommand;
pub mod runtime;
pub mod server;
pub mod worker;
