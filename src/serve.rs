//! `ferry apiserver` and the serving half of `ferry up`: open the storage, create the system
//! namespaces, serve the API over TCP (loopback only until authentication exists), compact the
//! change log, and shut down on SIGTERM or Ctrl-C by draining.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferry_apiserver::api::{ApiState, admission::Admission};
use ferry_apiserver::storage::Storage;
use tokio_util::sync::CancellationToken;

/// Where and how the API is served.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: std::net::SocketAddr,
    /// Database: sqlite://PATH or postgres://... (default: a SQLite file in the data dir).
    #[arg(long)]
    pub db: Option<String>,
    /// Directory for the embedded database.
    #[arg(long, default_value = ".ferry")]
    pub data_dir: PathBuf,
    /// The range Service ClusterIPs are allocated from.
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// The range Service NodePorts are allocated from.
    #[arg(long, default_value = "30000-32767")]
    pub node_port_range: String,
    /// How long the change log keeps changes for watches to resume from (e.g. 10m, 90s, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub watch_retention: Duration,
}

/// A duration flag in Go's form (`90s`, `1m30s`, `250ms`, `1h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    ferry_schema::duration::parse(text).map_err(|e| e.to_string())
}

/// What a companion started: extra routes to serve, and tasks to wait for at shutdown (after
/// the shutdown token fired).
pub struct Started {
    /// Routes served beside the API.
    pub routes: axum::Router,
    /// Tasks that finish their own shutdown (the nodes stopping their pods' processes).
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What runs next to the API in the same process (the GitOps engine of `ferry up`).
pub trait Companion {
    /// Starts, given the API state and the shutdown token.
    fn start(
        self,
        state: Arc<ApiState>,
        cancel: CancellationToken,
    ) -> impl std::future::Future<Output = anyhow::Result<Started>> + Send;
}

/// No companion: `ferry apiserver`.
pub struct Alone;

impl Companion for Alone {
    async fn start(self, _: Arc<ApiState>, _: CancellationToken) -> anyhow::Result<Started> {
        Ok(Started {
            routes: axum::Router::new(),
            tasks: Vec::new(),
        })
    }
}

/// How long companions' tasks get to finish after the server stopped.
const COMPANION_DRAIN: Duration = Duration::from_secs(20);

/// Serves the API (and `companion`) until SIGTERM or Ctrl-C.
pub fn run(
    args: ServeArgs,
    label: &str,
    companion: impl Companion + Send + 'static,
) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {} without TLS and token authentication (not built yet); \
             listen on a loopback address such as 127.0.0.1:6443",
            args.listen
        );
    }
    let db = match args.db {
        Some(db) => db,
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("creating {}", args.data_dir.display()))?;
            format!("sqlite://{}", args.data_dir.join("ferry.db").display())
        }
    };
    let ranges =
        ferry_apiserver::api::allocator::Ranges::parse(&args.service_cidr, &args.node_port_range)
            .map_err(|e| anyhow::anyhow!(e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // A crash test's fault point (see ferry_apiserver::storage::Faults); off otherwise.
        let faults = match std::env::var("FERRY_FAULT_PAUSE_BEFORE_COMMIT") {
            Ok(spec) => ferry_apiserver::storage::Faults::pause_before_commit(&spec)
                .context("FERRY_FAULT_PAUSE_BEFORE_COMMIT")?,
            Err(_) => ferry_apiserver::storage::Faults::default(),
        };
        let storage = Storage::open_with(&db, faults)
            .await
            .with_context(|| format!("opening {db}"))?;
        let admission = Admission::default();
        admission
            .attach(&storage)
            .await
            .context("loading the CustomResourceDefinitions and PriorityClasses")?;
        ferry_apiserver::bootstrap::system_namespaces(&storage, &admission)
            .await
            .context("creating the system namespaces")?;
        ferry_apiserver::bootstrap::system_priority_classes(&storage, &admission)
            .await
            .context("creating the system PriorityClasses")?;
        let cancel = CancellationToken::new();
        let state = Arc::new(ApiState {
            storage: storage.clone(),
            admission,
            shutdown: cancel.child_token(),
            ranges,
            metrics: Default::default(),
        });
        let heap: ferry_apiserver::api::metrics::Section = Arc::new(crate::heap::render);
        state.metrics.register_section(heap);
        let (listener, addr) = ferry_apiserver::server::bind(args.listen).await?;
        ferry_apiserver::bootstrap::kubernetes_service(&storage, &state.admission, &ranges, addr)
            .await
            .context("creating the kubernetes Service")?;
        let Started {
            routes: extra,
            tasks,
        } = companion.start(state.clone(), cancel.clone()).await?;
        println!(
            "ferry {label} listening on http://{addr} ({})",
            db.split('?').next().unwrap_or_default()
        );
        std::io::stdout().flush()?;
        let compactor = tokio::spawn(compact(
            storage.clone(),
            args.watch_retention,
            cancel.clone(),
        ));
        let finisher = tokio::spawn(ferry_apiserver::api::namespace::finisher(
            state.clone(),
            cancel.clone(),
        ));
        let signals = tokio::spawn(stop_on_signal(cancel.clone()));
        let app = ferry_apiserver::api::router(state.clone()).merge(extra);
        ferry_apiserver::server::serve_app(
            listener,
            app,
            state,
            cancel.clone(),
            Duration::from_secs(10),
        )
        .await?;
        cancel.cancel();
        let deadline = tokio::time::Instant::now() + COMPANION_DRAIN;
        for task in tasks {
            match tokio::time::timeout_at(deadline, task).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "a companion task ended abnormally"),
                Err(_) => tracing::warn!(
                    deadline_s = COMPANION_DRAIN.as_secs(),
                    "a companion task did not finish in time"
                ),
            }
        }
        if let Err(error) = compactor.await {
            tracing::warn!(%error, "the compactor ended abnormally");
        }
        if let Err(error) = finisher.await {
            tracing::warn!(%error, "the namespace finisher ended abnormally");
        }
        signals.abort();
        storage.close().await;
        anyhow::Ok(())
    })
}

/// Drops change-log entries older than `retention`, every 30 s (or sooner for short windows).
async fn compact(storage: Storage, retention: Duration, cancel: CancellationToken) {
    let every = Duration::from_secs(30).min(retention.max(Duration::from_secs(1)));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = tick.tick() => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let cutoff = now.saturating_sub(retention).as_millis() as i64;
                if let Err(e) = storage.compact(cutoff).await {
                    tracing::warn!(error = %e, "compaction failed; retrying at the next interval");
                }
            }
        }
    }
}

/// Fires `cancel` on SIGTERM or Ctrl-C.
pub async fn stop_on_signal(cancel: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
    cancel.cancel();
}
