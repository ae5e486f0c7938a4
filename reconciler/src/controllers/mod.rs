//! The workload controllers (kube-controller-manager's role): each a kube-runtime
//! `Controller` (one reconcile of an object at a time, level-triggered, requeued with
//! per-object back-off), sharing one watch and cache per kind through [`informer`].
//!
//! So far: [`replicaset`] (also ReplicationControllers), [`deployment`], [`job`] (with `ttlSecondsAfterFinished`),
//! [`cronjob`], [`daemonset`], [`statefulset`], [`endpoints`] (Endpoints and EndpointSlices),
//! [`disruption`] (PodDisruptionBudget status, spent by the apiserver's eviction),
//! [`quota`] (ResourceQuota usage, charged by the apiserver's admission),
//! [`serviceaccount`] and the garbage collector ([`gc`]).

pub mod cached_pod;
pub mod conditions;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod enabled;
pub mod endpoints;
pub mod error;
pub mod expectations;
pub mod gc;
pub mod history;
pub mod informer;
pub mod job;
pub mod owner;
pub mod pods;
pub mod quota;
pub mod replicaset;
mod runner;
pub mod serviceaccount;
pub mod statefulset;

use ferry_client::events::Recorder;
use futures::StreamExt;
use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Endpoints, Node, ReplicationController};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio_util::sync::CancellationToken;

pub use enabled::Enabled;
pub use error::ControllerError;

/// Runs the enabled workload controllers and node lifecycle against the apiserver `client`
/// talks to, until `cancel`. They share one watch and one cache of the pods, in the
/// controllers' own shape ([`cached_pod`]).
pub async fn run(
    client: kube::Client,
    enabled: Enabled,
    lifecycle: crate::lifecycle::LifecycleSettings,
    cancel: CancellationToken,
) {
    let recorder_d = Recorder::new(client.clone(), "deployment-controller", "");
    let pods = informer::Informer::<cached_pod::CachedPod>::new(client.clone());
    let sets = informer::Informer::<ReplicaSet>::new(client.clone());
    let mut loops: Vec<BoxFuture<'static, ()>> = Vec::new();
    let nodes = informer::Informer::<Node>::new(client.clone());
    if enabled.runs("nodelifecycle") {
        let node_changes = nodes
            .subscribe(|n: &Node| vec![kube::runtime::reflector::ObjectRef::from_obj(n)])
            .map(|_| ())
            .boxed();
        let caches = crate::lifecycle::SharedCaches {
            pods: pods.store(),
            nodes: nodes.store(),
            node_changes,
        };
        loops.push(Box::pin(crate::lifecycle::run(
            client.clone(),
            lifecycle,
            caches,
            cancel.clone(),
        )));
    }
    if enabled.runs("replicaset") {
        loops.push(Box::pin(replicaset::controller::<ReplicaSet>(
            client.clone(),
            Some(&sets),
            &pods,
            cancel.clone(),
        )));
    }
    if enabled.runs("replicationcontroller") {
        loops.push(Box::pin(replicaset::controller::<ReplicationController>(
            client.clone(),
            None,
            &pods,
            cancel.clone(),
        )));
    }
    // One watch and cache of the Jobs, for the Job and CronJob controllers.
    let jobs = informer::Informer::<Job>::new(client.clone());
    if enabled.runs("job") {
        let recorder = Recorder::new(client.clone(), "job-controller", "");
        loops.push(Box::pin(job::controller(
            client.clone(),
            &jobs,
            &pods,
            recorder,
            cancel.clone(),
        )));
    }
    let revisions = informer::Informer::<ControllerRevision>::new(client.clone());
    if enabled.runs("daemonset") {
        let recorder = Recorder::new(client.clone(), "daemonset-controller", "");
        let caches = daemonset::Caches {
            pods: &pods,
            nodes: &nodes,
            revisions: &revisions,
        };
        loops.push(Box::pin(daemonset::controller(
            client.clone(),
            caches,
            recorder,
            cancel.clone(),
        )));
    }
    if enabled.runs("daemonset") || enabled.runs("nodelifecycle") {
        // The node watch starts once both readers have subscribed.
        let stop = cancel.clone();
        loops.push(Box::pin(async move { nodes.run(stop).await }));
    }
    if enabled.runs("statefulset") {
        let recorder = Recorder::new(client.clone(), "statefulset-controller", "");
        loops.push(Box::pin(statefulset::controller(
            client.clone(),
            &pods,
            &revisions,
            recorder,
            cancel.clone(),
        )));
    }
    if enabled.runs("daemonset") || enabled.runs("statefulset") {
        let stop = cancel.clone();
        loops.push(Box::pin(async move { revisions.run(stop).await }));
    }
    if enabled.runs("endpoints") {
        let endpoints = informer::Informer::<Endpoints>::new(client.clone());
        let slices = informer::Informer::<EndpointSlice>::new(client.clone());
        let caches = endpoints::Caches {
            pods: &pods,
            endpoints: &endpoints,
            slices: &slices,
        };
        loops.push(Box::pin(endpoints::controller(
            client.clone(),
            caches,
            cancel.clone(),
        )));
        let stop = cancel.clone();
        loops.push(Box::pin(async move { endpoints.run(stop).await }));
        let stop = cancel.clone();
        loops.push(Box::pin(async move { slices.run(stop).await }));
    }
    if enabled.runs("disruption") {
        loops.push(Box::pin(disruption::controller(
            client.clone(),
            &pods,
            cancel.clone(),
        )));
    }
    if enabled.runs("resourcequota") {
        loops.push(Box::pin(quota::controller(
            client.clone(),
            &pods,
            cancel.clone(),
        )));
    }
    if [
        "nodelifecycle",
        "replicaset",
        "replicationcontroller",
        "job",
        "daemonset",
        "statefulset",
        "endpoints",
        "disruption",
        "resourcequota",
    ]
    .iter()
    .any(|l| enabled.runs(l))
    {
        // The pod watch starts once every reader has subscribed.
        let stop = cancel.clone();
        loops.push(Box::pin(async move { pods.run(stop).await }));
    }
    if enabled.runs("deployment") {
        loops.push(Box::pin(deployment::controller(
            client.clone(),
            &sets,
            recorder_d,
            cancel.clone(),
        )));
    }
    if enabled.runs("deployment") || enabled.runs("replicaset") {
        // The ReplicaSet watch starts once both readers have subscribed.
        let stop = cancel.clone();
        loops.push(Box::pin(async move { sets.run(stop).await }));
    }
    if enabled.runs("cronjob") {
        let recorder = Recorder::new(client.clone(), "cronjob-controller", "");
        loops.push(Box::pin(cronjob::controller(
            client.clone(),
            &jobs,
            recorder,
            cancel.clone(),
        )));
    }
    if enabled.runs("job") || enabled.runs("cronjob") {
        // The Job watch starts once both readers have subscribed.
        let stop = cancel.clone();
        loops.push(Box::pin(async move { jobs.run(stop).await }));
    }
    if enabled.runs("serviceaccount") {
        loops.push(Box::pin(serviceaccount::run(
            client.clone(),
            cancel.clone(),
        )));
    }
    if enabled.runs("garbagecollector") {
        loops.push(Box::pin(gc::run(client, cancel.clone())));
    }
    tracing::info!(?enabled, "workload controllers started");
    futures::future::join_all(loops).await;
    tracing::info!("workload controllers stopped");
}
