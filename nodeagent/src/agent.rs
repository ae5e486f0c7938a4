//! The nodes of one `ferry node` process (or of `ferry up`): registered with back-off until the
//! apiserver answers, kept alive by one heartbeat loop, and fed by one watch of the pods bound
//! to them, each pod driven by its own [`PodWorker`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use ferry_client::events::Recorder;

use crate::config::NodeConfig;
use crate::heartbeat;
use crate::node;
use crate::runtime::Runtime;

/// Events a node's queue holds before it drops one (client-go's broadcaster holds 1,000).
const EVENT_QUEUE: usize = 1000;
use crate::worker::{NodeSite, PodUpdate, PodWorker};

/// One node of the process and its runtime.
pub struct NodeHandle {
    /// The node.
    pub config: NodeConfig,
    /// Its runtime.
    pub runtime: Arc<dyn Runtime>,
    /// Where it makes its pods' volumes (real runtimes; hollow nodes make none).
    pub volumes: Option<std::path::PathBuf>,
}

/// What can stop an agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A node's description does not make a valid Node.
    #[error("node {node}: {error}")]
    Invalid {
        /// The node.
        node: String,
        /// The apiserver's refusal.
        error: kube::Error,
    },
    /// The kubelet endpoint cannot listen.
    #[error("the node endpoint cannot listen on {addr}: {error}")]
    Endpoint {
        /// Where it was to listen.
        addr: std::net::SocketAddr,
        /// Why not.
        error: std::io::Error,
    },
}

/// Runs `nodes` against the apiserver `client` talks to.
pub struct NodeAgent {
    client: kube::Client,
    nodes: Vec<NodeHandle>,
    heartbeat: Duration,
    /// Where the kubelet endpoint listens, with the node roots whose logs it serves.
    endpoint: Option<(std::net::SocketAddr, Vec<std::path::PathBuf>)>,
}

impl NodeAgent {
    /// An agent for `nodes`.
    pub fn new(client: kube::Client, nodes: Vec<NodeHandle>) -> NodeAgent {
        NodeAgent {
            client,
            nodes,
            heartbeat: heartbeat::RENEW_EVERY,
            endpoint: None,
        }
    }

    /// Serves the kubelet endpoint (container logs under `roots`) on `addr`; the nodes report
    /// the port it got.
    pub fn serve_endpoint(
        mut self,
        addr: std::net::SocketAddr,
        roots: Vec<std::path::PathBuf>,
    ) -> NodeAgent {
        self.endpoint = Some((addr, roots));
        self
    }

    /// Renews Leases this often instead of every 10 s (tests).
    pub fn heartbeat_every(mut self, every: Duration) -> NodeAgent {
        self.heartbeat = every;
        self
    }

    /// Registers one node (creating it, or taking over the one of that name), then reports
    /// its status; returns its uid.
    async fn register(
        client: &kube::Client,
        config: &NodeConfig,
        runtime: &str,
    ) -> Result<String, kube::Error> {
        let api: Api<core::Node> = Api::all(client.clone());
        let wanted: core::Node =
            serde_json::from_value(node::node_object(config)).map_err(kube::Error::SerdeError)?;
        let created = match api.create(&PostParams::default(), &wanted).await {
            Ok(n) => n,
            Err(kube::Error::Api(e)) if e.code == 409 => {
                // Registered before (a restart): labels, taints and CIDR are the agent's again.
                let patch = node::node_object(config);
                api.patch(
                    &config.name,
                    &PatchParams::default(),
                    &Patch::Merge(serde_json::json!({"metadata": {"labels": patch["metadata"]["labels"]}, "spec": patch["spec"]})),
                )
                .await?
            }
            Err(e) => return Err(e),
        };
        api.patch_status(
            &config.name,
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"status": node::node_status(config, runtime)})),
        )
        .await?;
        Ok(created.metadata.uid.unwrap_or_default())
    }

    /// Registers every node, retrying with back-off while the apiserver cannot be reached.
    async fn register_all(
        &self,
        cancel: &CancellationToken,
    ) -> Result<Vec<(String, String)>, AgentError> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(30))
            .without_max_times()
            .build();
        let mut done: Vec<(String, String)> = Vec::new();
        let mut left: Vec<&NodeHandle> = self.nodes.iter().collect();
        let slots = Arc::new(tokio::sync::Semaphore::new(32));
        while !left.is_empty() {
            let mut tasks = tokio::task::JoinSet::new();
            for (i, n) in left.iter().enumerate() {
                let client = self.client.clone();
                let config = n.config.clone();
                let runtime = n.runtime.name();
                let slots = slots.clone();
                tasks.spawn(async move {
                    let _slot = slots.acquire_owned().await;
                    (i, NodeAgent::register(&client, &config, runtime).await)
                });
            }
            let mut results = Vec::new();
            while let Some(r) = tasks.join_next().await {
                match r {
                    Ok(r) => results.push(r),
                    Err(e) => tracing::error!(error = %e, "a registration task failed"),
                }
            }
            // Every node is failed until its registration says otherwise (a task that panicked
            // is tried again).
            let mut failed: HashSet<usize> = (0..left.len()).collect();
            let mut last_error = None;
            for (i, r) in results {
                match r {
                    Ok(uid) => {
                        failed.remove(&i);
                        done.push((left[i].config.name.clone(), uid));
                    }
                    Err(kube::Error::Api(e)) if e.code == 422 || e.code == 400 => {
                        return Err(AgentError::Invalid {
                            node: left[i].config.name.clone(),
                            error: kube::Error::Api(e),
                        });
                    }
                    Err(e) => {
                        failed.insert(i);
                        last_error = Some(e);
                    }
                }
            }
            left = left
                .into_iter()
                .enumerate()
                .filter(|(i, _)| failed.contains(i))
                .map(|(_, n)| n)
                .collect();
            if let Some(e) = last_error {
                let wait = delays.next().unwrap_or(Duration::from_secs(30));
                tracing::warn!(error = %e, nodes = left.len(), retry_in_ms = wait.as_millis() as u64, "the apiserver cannot be reached; registering again after a back-off");
                tokio::select! {
                    () = cancel.cancelled() => return Ok(done),
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        Ok(done)
    }

    /// Registers the nodes, then runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<(), AgentError> {
        if let Some((addr, roots)) = self.endpoint.take() {
            let (listener, bound) = crate::server::bind(addr)
                .await
                .map_err(|error| AgentError::Endpoint { addr, error })?;
            for node in &mut self.nodes {
                node.config.kubelet_port = bound.port();
            }
            let runtimes = self.nodes.iter().map(|n| n.runtime.clone()).collect();
            let kubelet = crate::server::Kubelet::new(crate::logs::LogFiles::new(roots), runtimes);
            tracing::info!(%bound, "node endpoint listening");
            tokio::spawn(crate::server::serve(listener, kubelet, cancel.clone()));
        }
        let started = std::time::Instant::now();
        let registered = self.register_all(&cancel).await?;
        if cancel.is_cancelled() {
            return Ok(());
        }
        tracing::info!(
            nodes = registered.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "nodes registered"
        );
        tokio::spawn(heartbeat::run(
            self.client.clone(),
            registered,
            self.heartbeat,
            cancel.clone(),
        ));
        tokio::spawn(keep_ready(
            self.client.clone(),
            self.nodes
                .iter()
                .map(|n| (n.config.clone(), n.runtime.name()))
                .collect(),
            cancel.clone(),
        ));
        // What an earlier run of these nodes left running is found again before any pod
        // worker starts (the workers then take their pods over).
        for node in &self.nodes {
            let adopted = node.runtime.recover().await;
            if adopted > 0 {
                tracing::info!(node = %node.config.name, containers = adopted, "found running containers of an earlier run");
            }
        }
        // One set of ConfigMap and Secret watches for every node of the process.
        let watches = crate::worker::source_watch::SourceWatches::new(self.client.clone());
        let by_name: HashMap<String, NodeSite> = self
            .nodes
            .iter()
            .map(|n| {
                let site = NodeSite {
                    runtime: n.runtime.clone(),
                    client: self.client.clone(),
                    host_ip: n.config.address.clone(),
                    events: Some(Recorder::queued(
                        self.client.clone(),
                        "kubelet",
                        &n.config.name,
                        EVENT_QUEUE,
                    )),
                    volume_root: n.volumes.clone(),
                    allocatable: Arc::new(n.config.capacity.clone()),
                    watches: n.volumes.as_ref().map(|_| watches.clone()),
                };
                (n.config.name.clone(), site)
            })
            .collect();
        // One watch for every node of the process: one node watches its own name; many watch
        // every bound pod and keep theirs.
        let fields = match self.nodes.as_slice() {
            [one] => format!("spec.nodeName={}", one.config.name),
            _ => "spec.nodeName!=".to_owned(),
        };
        let pods = watcher(
            Api::<core::Pod>::all(self.client.clone()),
            watcher::Config::default().fields(&fields),
        )
        .default_backoff();
        let mut pods = pods.boxed();
        let mut workers: HashMap<String, mpsc::Sender<PodUpdate>> = HashMap::new();
        loop {
            let event = tokio::select! {
                () = cancel.cancelled() => break,
                e = pods.next() => e,
            };
            let event = match event {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the pod watch failed; it resumes");
                    continue;
                }
                None => break,
            };
            match event {
                watcher::Event::Apply(mut pod) | watcher::Event::InitApply(mut pod) => {
                    // A worker holds its pod for the pod's life: without managedFields (the
                    // kubelet never reads them) and without the slack of parsing.
                    crate::worker::compact::compact(&mut pod);
                    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
                        continue;
                    };
                    let Some(site) = by_name.get(&node) else {
                        continue;
                    };
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    let pod = match workers.get(&uid) {
                        Some(tx) => match tx.send(PodUpdate::Changed(Box::new(pod))).await {
                            Ok(()) => continue,
                            // Its worker has ended (a deletion it could not finish): a new
                            // worker takes the pod from here.
                            Err(mpsc::error::SendError(update)) => {
                                workers.remove(&uid);
                                match update {
                                    PodUpdate::Changed(pod) => *pod,
                                    PodUpdate::Deleted => continue,
                                }
                            }
                        },
                        None => pod,
                    };
                    let (tx, rx) = mpsc::channel(8);
                    let span = tracing::debug_span!("pod", node = %node, pod = %pod.metadata.name.as_deref().unwrap_or_default());
                    let worker = PodWorker::new(pod, site.clone());
                    tokio::spawn(worker.run(rx, cancel.child_token()).instrument(span));
                    workers.insert(uid, tx);
                }
                watcher::Event::Delete(pod) => {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    if let Some(tx) = workers.remove(&uid)
                        && tx.send(PodUpdate::Deleted).await.is_err()
                    {
                        tracing::debug!(pod = %uid, "the pod's worker had already stopped");
                    }
                }
                watcher::Event::InitDone => {
                    // Every pod bound here is known now: what the runtimes have of any other
                    // pod (deleted while no agent ran) goes.
                    let known: HashSet<String> = workers.keys().cloned().collect();
                    tokio::spawn(remove_orphans(by_name.values().cloned().collect(), known));
                }
                watcher::Event::Init => {}
            }
        }
        // What the runtimes run on the host ends with the agent (a `process` node's pods).
        futures::future::join_all(self.nodes.iter().map(|n| n.runtime.shutdown())).await;
        Ok(())
    }
}

/// Stops and removes what the nodes' runtimes have of pods not in `known` (pods deleted while
/// no agent ran): their sandboxes, containers and volumes.
async fn remove_orphans(sites: Vec<NodeSite>, known: HashSet<String>) {
    for site in sites {
        let sandboxes = match site.runtime.list_pod_sandboxes().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the runtime's sandboxes could not be listed");
                continue;
            }
        };
        for sandbox in sandboxes
            .into_iter()
            .filter(|s| !known.contains(&s.pod_uid))
        {
            tracing::info!(pod = %sandbox.pod_uid, "removing a pod deleted while no agent ran");
            if let Err(e) = site.runtime.stop_pod_sandbox(&sandbox.id).await {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "an orphaned sandbox could not be stopped");
            }
            if let Err(e) = site.runtime.remove_pod_sandbox(&sandbox.id).await {
                tracing::warn!(sandbox = %sandbox.id, error = %e, "an orphaned sandbox could not be removed");
            }
            if let Some(root) = &site.volume_root
                && let Err(e) = crate::worker::volumes::remove(root, &sandbox.pod_uid)
            {
                tracing::warn!(pod = %sandbox.pod_uid, error = %e, "an orphaned pod's volumes could not be removed");
            }
        }
    }
}

/// Watches the process's Node objects: one that someone else marked not Ready (node lifecycle,
/// after the agent could not renew its Lease for a while) gets its healthy status back once
/// the agent runs again.
async fn keep_ready(
    client: kube::Client,
    nodes: Vec<(crate::config::NodeConfig, &'static str)>,
    cancel: CancellationToken,
) {
    let mine: HashMap<String, (crate::config::NodeConfig, &'static str)> = nodes
        .into_iter()
        .map(|(c, r)| (c.name.clone(), (c, r)))
        .collect();
    let api: Api<core::Node> = Api::all(client);
    let mut events = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            e = events.next() => e,
        };
        let node = match event {
            Some(Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n))) => n,
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the node watch failed; it resumes");
                continue;
            }
            None => return,
        };
        let name = node.metadata.name.clone().unwrap_or_default();
        let Some((config, runtime)) = mine.get(&name) else {
            continue;
        };
        let ready = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        if ready {
            continue;
        }
        tracing::info!(node = %name, "reporting the node Ready again");
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": node::node_status(config, runtime)})),
            )
            .await
        {
            tracing::warn!(node = %name, error = %e, "the node's status could not be written");
        }
    }
}
