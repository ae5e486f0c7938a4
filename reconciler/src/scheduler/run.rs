//! The scheduler's loop: watch pods and nodes, keep the cache and the queue, decide, bind.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::algorithm::Algorithm;
use super::cache::Cache;
use super::metrics::SchedulerMetrics;
use super::pod_info::{PodInfo, PodKey, key_of};
use super::queue::SchedulingQueue;
use super::{DEFAULT_SCHEDULER, preempt};
use ferry_client::events::Recorder;

/// How many bindings may be in flight at once.
const BINDINGS_IN_FLIGHT: usize = 64;

/// The outcome of one binding, back to the loop.
struct Bound {
    key: PodKey,
    node: String,
    result: Result<(), kube::Error>,
}

/// Runs the scheduler against the apiserver `client` talks to.
pub struct Scheduler {
    client: kube::Client,
    metrics: Arc<SchedulerMetrics>,
    recorder: Recorder,
    algorithm: Algorithm,
    cache: Cache,
    queue: SchedulingQueue,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

/// Whether the scheduler should place this pod.
fn wants_a_node(pod: &core::Pod) -> bool {
    let spec = pod.spec.as_ref();
    let name = spec.and_then(|s| s.scheduler_name.as_deref());
    spec.is_some_and(|s| s.node_name.as_deref().is_none_or(str::is_empty))
        && name.is_none_or(|n| n == DEFAULT_SCHEDULER)
        && pod.metadata.deletion_timestamp.is_none()
        && !finished(pod)
}

fn finished(pod: &core::Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Whether a node change could make a pending pod fit (heartbeats and condition updates cannot).
fn placement_changed(old: Option<&core::Node>, new: &core::Node) -> bool {
    let Some(old) = old else { return true };
    old.metadata.labels != new.metadata.labels
        || old.spec != new.spec
        || old.status.as_ref().map(|s| &s.allocatable)
            != new.status.as_ref().map(|s| &s.allocatable)
}

impl Scheduler {
    /// A scheduler; `metrics` is shared with whoever serves `/metrics`.
    pub fn new(client: kube::Client, metrics: Arc<SchedulerMetrics>) -> Scheduler {
        Scheduler {
            recorder: Recorder::new(client.clone(), DEFAULT_SCHEDULER, ""),
            client,
            metrics,
            algorithm: Algorithm::default(),
            cache: Cache::default(),
            queue: SchedulingQueue::default(),
        }
    }

    /// Runs until `cancel` fires.
    pub async fn run(mut self, cancel: CancellationToken) {
        let pods = watcher(
            Api::<core::Pod>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let nodes = watcher(
            Api::<core::Node>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .boxed();
        let mut pods = pods.fuse();
        let mut nodes = nodes.fuse();
        let (bound_tx, mut bound_rx) = mpsc::channel::<Bound>(BINDINGS_IN_FLIGHT * 2);
        let slots = Arc::new(Semaphore::new(BINDINGS_IN_FLIGHT));
        tracing::info!("scheduler started");
        loop {
            // Everything that has arrived is taken in before deciding, so a decision sees the
            // newest cache.
            let now = Instant::now();
            let next = if slots.available_permits() > 0 {
                self.queue.pop(now)
            } else {
                None
            };
            if let Some(info) = next {
                self.attempt(info, &bound_tx, &slots).await;
                continue;
            }
            self.metrics
                .pending
                .store(self.queue.pending() as u64, Ordering::Relaxed);
            let wake = self
                .queue
                .next_due()
                .unwrap_or_else(|| now + Duration::from_secs(3600));
            tokio::select! {
                () = cancel.cancelled() => break,
                event = pods.next() => match event {
                    Some(Ok(e)) => self.pod_event(e),
                    Some(Err(e)) => tracing::warn!(error = %e, "the pod watch failed; it resumes"),
                    None => break,
                },
                event = nodes.next() => match event {
                    Some(Ok(e)) => self.node_event(e),
                    Some(Err(e)) => tracing::warn!(error = %e, "the node watch failed; it resumes"),
                    None => break,
                },
                Some(bound) = bound_rx.recv() => self.bound(bound).await,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    fn pod_event(&mut self, event: watcher::Event<core::Pod>) {
        match event {
            watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => self.pod_seen(pod),
            watcher::Event::Delete(pod) => {
                let key = key_of(&pod);
                self.queue.remove(&key);
                if self.cache.unplace(&key).is_some() {
                    self.queue.cluster_changed();
                }
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    fn pod_seen(&mut self, pod: core::Pod) {
        let key = key_of(&pod);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        if finished(&pod) || pod.metadata.deletion_timestamp.is_some() && node.is_none() {
            self.queue.remove(&key);
            if self.cache.unplace(&key).is_some() {
                self.queue.cluster_changed();
            }
            return;
        }
        // A bound pod already in the cache on that node: nothing to do (status updates of
        // running pods are most of the events).
        if let Some(node) = &node
            && self.cache.placed_on(&key) == Some(node.as_str())
        {
            self.queue.remove(&key);
            return;
        }
        let wanted = wants_a_node(&pod);
        let info = match PodInfo::of(&pod) {
            Ok(info) => Arc::new(info),
            Err(e) => {
                tracing::warn!(pod = %key, error = %e, "a pod's placement rules cannot be read");
                return;
            }
        };
        match node {
            Some(node) => {
                self.queue.remove(&key);
                self.cache.place(info, &node);
            }
            None if wanted && self.cache.placed_on(&key).is_none() => {
                self.queue.add(info);
            }
            None => {}
        }
    }

    fn node_event(&mut self, event: watcher::Event<core::Node>) {
        match event {
            watcher::Event::Apply(node) | watcher::Event::InitApply(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                // The cache holds the node as of its last placement change: heartbeats and
                // condition updates leave it (and the queue) alone.
                let cached = self.cache.node(&name).map(|n| n.node.as_ref());
                if placement_changed(cached, &node) {
                    self.cache.upsert_node(Arc::new(node));
                    self.queue.cluster_changed();
                }
            }
            watcher::Event::Delete(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                self.cache.remove_node(&name);
            }
            watcher::Event::Init | watcher::Event::InitDone => {}
        }
    }

    /// One decision for one pod.
    async fn attempt(
        &mut self,
        info: Arc<PodInfo>,
        bound_tx: &mpsc::Sender<Bound>,
        slots: &Arc<Semaphore>,
    ) {
        let span = tracing::debug_span!("schedule", pod = %info.key);
        let started = std::time::Instant::now();
        let decision = span.in_scope(|| self.algorithm.schedule(&info, &self.cache));
        self.metrics.observe(started.elapsed());
        match decision {
            Ok(node) => {
                // Assume: the cache counts the pod on the node before the binding lands.
                self.cache.place(info.clone(), &node);
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let client = self.client.clone();
                let tx = bound_tx.clone();
                let key = info.key.clone();
                let pod = info.clone();
                tokio::spawn(
                    async move {
                        let result = bind(&client, &pod, &node).await;
                        drop(permit);
                        if tx.send(Bound { key, node, result }).await.is_err() {
                            tracing::debug!("the scheduler stopped before a binding ended");
                        }
                    }
                    .instrument(span),
                );
            }
            Err(fit) => {
                self.metrics.unschedulable.fetch_add(1, Ordering::Relaxed);
                let message = fit.to_string();
                tracing::debug!(pod = %info.key, %message, "unschedulable");
                let mut nominated = None;
                if let Some(p) = preempt::find(&info, &self.cache) {
                    self.metrics.preemptions.fetch_add(1, Ordering::Relaxed);
                    nominated = Some(p.node.clone());
                    self.preempt(&info, &p).await;
                }
                self.unschedulable(&info, &message, nominated.as_deref())
                    .await;
                self.queue.failed(&info.key, Instant::now());
            }
        }
    }

    async fn preempt(&self, pod: &PodInfo, p: &preempt::Preemption) {
        for victim in &p.victims {
            let api: Api<core::Pod> = Api::namespaced(self.client.clone(), &victim.namespace);
            tracing::info!(pod = %pod.key, victim = %victim.key, node = %p.node, "preempting");
            if let Err(e) = api.delete(&victim.name, &DeleteParams::default()).await {
                tracing::warn!(victim = %victim.key, error = %e, "a preemption victim could not be deleted");
                continue;
            }
            self.recorder
                .record(
                    &victim.involved(),
                    "Normal",
                    "Preempted",
                    &format!("Preempted by pod {}", pod.uid),
                )
                .await;
        }
    }

    /// Writes `PodScheduled=False` (and a nominated node), and a FailedScheduling Event.
    async fn unschedulable(&self, info: &PodInfo, message: &str, nominated: Option<&str>) {
        let api: Api<core::Pod> = Api::namespaced(self.client.clone(), &info.namespace);
        let name = &info.name;
        let already = info.unschedulable.as_deref() == Some(message);
        if !already || nominated.is_some() {
            let mut status = json!({"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            }]});
            if let Some(node) = nominated {
                status["nominatedNodeName"] = json!(node);
            }
            if let Err(e) = api
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Strategic(json!({"status": status})),
                )
                .await
            {
                tracing::warn!(pod = %info.key, error = %e, "the PodScheduled condition could not be written");
            }
        }
        self.recorder
            .record(&info.involved(), "Warning", "FailedScheduling", message)
            .await;
    }

    async fn bound(&mut self, bound: Bound) {
        match bound.result {
            Ok(()) => {
                self.metrics.scheduled.fetch_add(1, Ordering::Relaxed);
                self.queue.done(&bound.key);
                if let Some(pod) = self.cache_pod(&bound.key) {
                    // Events are advice: recorded beside the loop, never in its way.
                    let recorder = self.recorder.clone();
                    let about = pod.involved();
                    let message = format!("Successfully assigned {} to {}", bound.key, bound.node);
                    tokio::spawn(async move {
                        recorder
                            .record(&about, "Normal", "Scheduled", &message)
                            .await;
                    });
                }
            }
            Err(e) => {
                self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(pod = %bound.key, node = %bound.node, error = %e, "binding failed; the pod goes back to the queue");
                self.cache.unplace(&bound.key);
                self.queue.failed(&bound.key, Instant::now());
            }
        }
    }

    fn cache_pod(&self, key: &str) -> Option<Arc<PodInfo>> {
        let node = self.cache.placed_on(key)?;
        self.cache
            .node(node)?
            .pods
            .iter()
            .find(|p| p.key == key)
            .cloned()
    }
}

/// `POST pods/NAME/binding`.
async fn bind(client: &kube::Client, pod: &PodInfo, node: &str) -> Result<(), kube::Error> {
    let (namespace, name) = (&pod.namespace, &pod.name);
    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": {"name": name, "namespace": namespace, "uid": pod.uid},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    });
    let body = serde_json::to_vec(&binding).map_err(kube::Error::SerdeError)?;
    let request = http::Request::post(format!(
        "/api/v1/namespaces/{namespace}/pods/{name}/binding"
    ))
    .header("content-type", "application/json")
    .body(body)
    .map_err(kube::Error::HttpError)?;
    client.request::<serde_json::Value>(request).await.map(drop)
}
