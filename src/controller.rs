//! `ferry controller`: the scheduler (and, as they land, the other controllers) against an
//! apiserver, one active at a time through leader election on a Lease in `kube-system`.

use std::sync::Arc;

use ferry_client::leader::{Elector, Timings};
use ferry_reconciler::controllers::Enabled;
use ferry_reconciler::scheduler::Scheduler;
use ferry_reconciler::scheduler::metrics::SchedulerMetrics;
use tokio_util::sync::CancellationToken;

/// The Lease the controllers elect their leader with.
pub const LEASE: &str = "ferry-controller-manager";

/// Settings of the control loops, shared by `ferry controller` and `ferry up`.
#[derive(Debug, Clone, clap::Args)]
pub struct LoopSettings {
    /// How long a node's Lease may go unrenewed before the node is Unknown and tainted.
    #[arg(long, default_value = "40s", value_parser = crate::serve::parse_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// How often node lifecycle looks at the nodes.
    #[arg(long, default_value = "5s", value_parser = crate::serve::parse_duration)]
    pub node_monitor_period: std::time::Duration,
    /// Which loops run, as kube-controller-manager's flag: `*` for all, `NAME` to add one,
    /// `-NAME` to leave one out (scheduler, nodelifecycle, replicaset, deployment, daemonset,
    /// statefulset, job, cronjob, endpoints, disruption, resourcequota, serviceaccount,
    /// garbagecollector).
    #[arg(long, default_value = "*", value_delimiter = ',', value_parser = parse_loop)]
    pub controllers: Vec<String>,
}

fn parse_loop(item: &str) -> Result<String, String> {
    Enabled::parse(&[item])
        .map(|_| item.to_owned())
        .map_err(|e| e.to_string())
}

/// `ferry controller`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ControllerArgs {
    /// This candidate's identity in the election (default: hostname and process id).
    #[arg(long)]
    pub identity: Option<String>,
    #[command(flatten)]
    pub loops: LoopSettings,
}

/// Runs the control loops (scheduler, node lifecycle, workload controllers) until `leading` is cancelled.
pub async fn lead(
    client: kube::Client,
    loops: LoopSettings,
    metrics: Arc<SchedulerMetrics>,
    leading: CancellationToken,
) {
    let lifecycle = ferry_reconciler::lifecycle::LifecycleSettings {
        grace: loops.node_monitor_grace_period,
        period: loops.node_monitor_period,
    };
    // Each item was checked when the flag was read; the list as a whole is read here.
    let enabled = Enabled::parse(&loops.controllers).unwrap_or_else(|_| Enabled::all());
    let scheduler = enabled
        .runs("scheduler")
        .then(|| Scheduler::new(client.clone(), metrics).run(leading.clone()));
    tokio::join!(
        async move {
            if let Some(s) = scheduler {
                s.await;
            }
        },
        ferry_reconciler::controllers::run(client, enabled, lifecycle, leading),
    );
}

/// Runs `ferry controller` until SIGINT or SIGTERM.
pub fn run(server: &str, args: ControllerArgs) -> anyhow::Result<()> {
    let identity = args
        .identity
        .unwrap_or_else(|| format!("{}_{}", crate::remote::hostname(), std::process::id()));
    let loops = args.loops;
    crate::remote::run(server, |client, cancel| async move {
        let elector = Elector::new(
            client.clone(),
            "kube-system",
            LEASE,
            &identity,
            Timings::default(),
        );
        while !cancel.is_cancelled() {
            tracing::info!(%identity, "waiting to lead");
            if !elector.acquire(&cancel).await {
                break;
            }
            let leading = cancel.child_token();
            let metrics = Arc::new(SchedulerMetrics::default());
            let work = tokio::spawn(lead(
                client.clone(),
                loops.clone(),
                metrics,
                leading.clone(),
            ));
            elector.keep(&cancel, &leading).await;
            if let Err(e) = work.await {
                tracing::error!(error = %e, "the control loops ended abnormally");
            }
            if !cancel.is_cancelled() {
                tracing::warn!(%identity, "lost the leadership; standing for election again");
            }
        }
        Ok(())
    })
}
