//! `ferry up`: the apiserver and the GitOps engine in one process. The engine talks to the API
//! through the `kube` client over an in-process tower service (no TCP); the source given on the
//! command line becomes a `Source` object in `ferry-system`, and any Source created with kubectl
//! is followed too.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use ferry_apiserver::api::ApiState;
use ferry_nodeagent::agent::NodeAgent;
use ferry_reconciler::gitops::cluster::{Cluster, FERRY_NAMESPACE};
use ferry_reconciler::gitops::controller::{Controller, Webhooks};
use ferry_reconciler::gitops::git;
use ferry_reconciler::gitops::webhook;
use ferry_reconciler::gitops::worker::Settings;
use ferry_reconciler::scheduler::metrics::SchedulerMetrics;
use ferry_schema::validate::{Options, Validator};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::serve::{Companion, ServeArgs, parse_duration};

/// Where the demo repository lives, relative to the ferry checkout.
const DEMO: &str = "fixtures/demo";

/// `ferry up`'s arguments.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    #[command(flatten)]
    serve: ServeArgs,
    /// Repository (local path or file:// URL) or plain directory to follow (default: the demo
    /// repository in fixtures/demo).
    #[arg(long)]
    source: Option<String>,
    /// Name of the Source object (default: the directory's name).
    #[arg(long)]
    name: Option<String>,
    /// Branch to follow (default: the repository's HEAD).
    #[arg(long)]
    branch: Option<String>,
    /// Tag to follow instead of a branch.
    #[arg(long)]
    tag: Option<String>,
    /// Sub-path of the repository holding the manifests.
    #[arg(long)]
    path: Option<String>,
    /// Revert drift of live objects from the applied commit.
    #[arg(long)]
    self_heal: bool,
    /// Roll a Degraded revision back to the last Healthy one.
    #[arg(long)]
    auto_rollback: bool,
    /// Allow a commit that deletes every object of the source.
    #[arg(long)]
    allow_empty: bool,
    /// Keep objects the repository no longer has (default: prune them).
    #[arg(long)]
    no_prune: bool,
    /// How often a remote source is polled, and a local one checked besides its watch.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    poll_interval: Duration,
    /// How often live objects are compared with the applied commit.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    drift_interval: Duration,
    /// How long an applied commit may take to become healthy.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    health_timeout: Duration,
    /// A file holding the shared secret of Git-host webhooks (POST /hooks/git/SOURCE).
    #[arg(long)]
    webhook_secret_file: Option<PathBuf>,
    /// How many nodes run inside the appliance (0: none; `ferry node` processes join it).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// The nodes' name (with --nodes N > 1: the prefix of NAME-0 .. NAME-N-1; default: the
    /// machine's hostname).
    #[arg(long)]
    node_name: Option<String>,
    #[command(flatten)]
    node: crate::node::NodeOptions,
    #[command(flatten)]
    loops: crate::controller::LoopSettings,
}

/// A DNS label from a directory name.
fn label_of(text: &str) -> String {
    let mut out: String = text
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(50);
    let out = out.trim_matches('-').to_owned();
    if out.is_empty() { "source".into() } else { out }
}

/// The Source object for the command line's source.
fn source_object(args: &UpArgs) -> anyhow::Result<Value> {
    let given = args.source.clone().unwrap_or_else(|| DEMO.to_owned());
    let is_url = ["https://", "http://", "ssh://", "git://"]
        .iter()
        .any(|p| given.starts_with(p));
    let local = given.strip_prefix("file://").unwrap_or(&given);
    let (kind, url, mut subpath, default_name) = if is_url {
        let name = given
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit('/')
            .next()
            .unwrap_or("source")
            .to_owned();
        ("Git", given.clone(), String::new(), name)
    } else {
        let path = Path::new(local);
        anyhow::ensure!(
            path.exists(),
            "the source {} does not exist{}",
            path.display(),
            if args.source.is_none() {
                " (run ferry up from the ferry checkout, or pass --source)"
            } else {
                ""
            }
        );
        let name = path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "source".into());
        match git::discover(path) {
            Some((root, relative)) => ("Git", root.display().to_string(), relative, name),
            None => {
                let root = path
                    .canonicalize()
                    .with_context(|| format!("reading {}", path.display()))?;
                ("Directory", root.display().to_string(), String::new(), name)
            }
        }
    };
    if let Some(extra) = &args.path {
        subpath = [subpath.as_str(), extra.trim_matches('/')]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
    }
    let name = label_of(args.name.as_deref().unwrap_or(&default_name));
    let mut spec = json!({
        "type": kind,
        "url": url,
        "prune": !args.no_prune,
        "allowEmpty": args.allow_empty,
        "selfHeal": args.self_heal,
        "autoRollback": args.auto_rollback,
        "interval": format!("{}s", args.poll_interval.as_secs()),
    });
    if !subpath.is_empty() {
        spec["path"] = json!(subpath);
    }
    if let Some(b) = &args.branch {
        spec["branch"] = json!(b);
    }
    if let Some(t) = &args.tag {
        spec["tag"] = json!(t);
    }
    Ok(json!({
        "apiVersion": "ferry.dev/v1",
        "kind": "Source",
        "metadata": {"name": name, "namespace": FERRY_NAMESPACE},
        "spec": spec,
    }))
}

/// The GitOps engine as `ferry up`'s companion of the API.
struct GitOps {
    /// The in-process nodes.
    nodes: Vec<ferry_nodeagent::agent::NodeHandle>,
    /// Their kubelet endpoint's address and log roots, when they run real containers.
    endpoint: Option<(std::net::SocketAddr, Vec<PathBuf>)>,
    /// The control loops' settings.
    loops: crate::controller::LoopSettings,
    /// How often the nodes renew their Leases.
    lease_renew: Duration,
    source: Value,
    settings: Settings,
    secret: Option<Vec<u8>>,
}

#[derive(Clone)]
struct HookState {
    webhooks: Webhooks,
    secret: Option<Arc<Vec<u8>>>,
}

async fn hook(
    State(hook): State<HookState>,
    UrlPath(source): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Err(e) = webhook::verify(
        hook.secret.as_deref().map(Vec::as_slice),
        &body,
        header("x-hub-signature-256"),
        header("x-gitlab-token"),
    ) {
        return (StatusCode::UNAUTHORIZED, format!("{e}\n"));
    }
    if hook.webhooks.trigger(&source) {
        (StatusCode::ACCEPTED, format!("fetching source {source}\n"))
    } else {
        (StatusCode::NOT_FOUND, format!("no source {source}\n"))
    }
}

impl Companion for GitOps {
    async fn start(
        self,
        state: Arc<ApiState>,
        cancel: CancellationToken,
    ) -> anyhow::Result<crate::serve::Started> {
        state.metrics.register(ferry_apiserver::api::metrics::Counter {
            name: "ferry_gitops_failed_writes_total",
            help: "Cluster writes of the GitOps engine that failed (each try), by what was written.",
            series: Arc::new(|| {
                ferry_reconciler::gitops::durable::failed_writes()
                    .into_iter()
                    .map(|(what, n)| (format!("write=\"{what}\""), n))
                    .collect()
            }),
        });
        let scheduler_metrics = Arc::new(SchedulerMetrics::default());
        let section = scheduler_metrics.clone();
        state
            .metrics
            .register_section(Arc::new(move || section.render()));
        let service = ferry_apiserver::api::router(state);
        let client = kube::Client::new(service, "default");
        // The scheduler and the nodes, in-process (no election: one appliance, one leader).
        tokio::spawn(crate::controller::lead(
            client.clone(),
            self.loops,
            scheduler_metrics,
            cancel.clone(),
        ));
        // `--nodes 0`: the control plane alone; `ferry node` processes run the pods.
        let mut tasks = Vec::new();
        if !self.nodes.is_empty() {
            let mut agent =
                NodeAgent::new(client.clone(), self.nodes).heartbeat_every(self.lease_renew);
            if let Some(endpoint) = self.endpoint {
                agent = agent.serve_endpoint(endpoint.0, endpoint.1);
            }
            let agent_cancel = cancel.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = agent.run(agent_cancel).await {
                    tracing::error!(error = %e, "the nodes stopped");
                }
            }));
        }
        let cluster = Cluster::new(client);
        cluster
            .apply_source(&self.source, "ferry-up")
            .await
            .context("creating the Source")?;
        let controller = Controller::new(cluster, self.settings);
        let webhooks = controller.webhooks();
        tokio::spawn(controller.run(cancel));
        let hooks = axum::Router::new()
            .route("/hooks/git/{source}", axum::routing::post(hook))
            .with_state(HookState {
                webhooks,
                secret: self.secret.map(Arc::new),
            });
        Ok(crate::serve::Started {
            routes: hooks,
            tasks,
        })
    }
}

/// Runs `ferry up`.
pub fn up(args: UpArgs) -> anyhow::Result<()> {
    let source = source_object(&args)?;
    let secret = match &args.webhook_secret_file {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading {}", path.display()))?
                .trim_ascii()
                .to_vec(),
        ),
        None => None,
    };
    let settings = Settings {
        validator: Arc::new(Validator::new(
            Options {
                strict: true,
                ..Options::default()
            },
            Vec::new(),
        )),
        poll_interval: args.poll_interval,
        drift_interval: args.drift_interval,
        health_interval: Duration::from_secs(1),
        health_timeout: args.health_timeout,
        mirrors: args.serve.data_dir.join("sources"),
    };
    let spec = &source["spec"];
    let label = format!(
        "up (source {}: {}{})",
        source["metadata"]["name"].as_str().unwrap_or_default(),
        spec["url"].as_str().unwrap_or_default(),
        spec["path"]
            .as_str()
            .map(|p| format!(" path {p}"))
            .unwrap_or_default()
    );
    let node_name = match &args.node_name {
        Some(n) => n.clone(),
        None => label_of(&crate::remote::hostname()),
    };
    // The appliance's nodes run real processes unless told otherwise.
    let mut args = args;
    if args.node.runtime.is_none() {
        args.node.runtime = Some(crate::node::RuntimeKind::Process);
    }
    let roots = args.serve.data_dir.join("nodes");
    let nodes = match args.nodes {
        0 => Vec::new(),
        count => args.node.handles(&node_name, count, &roots)?,
    };
    let endpoint = args.node.endpoint(&nodes, &roots, "127.0.0.1:0");
    let companion = GitOps {
        loops: args.loops.clone(),
        lease_renew: args.node.node_lease_renew_interval,
        nodes,
        endpoint,
        source,
        settings,
        secret,
    };
    crate::serve::run(args.serve, &label, companion)
}
