//! The workload controllers (kube-controller-manager's role): each a kube-runtime
//! `Controller` (one reconcile of an object at a time, level-triggered, requeued with
//! per-object back-off), sharing one watch and cache per kind through [`informer`].
//!
//! So far: [`replicaset`], [`deployment`] and [`serviceaccount`].

pub mod deployment;
pub mod error;
pub mod expectations;
pub mod informer;
pub mod owner;
pub mod pods;
pub mod replicaset;
pub mod serviceaccount;

use ferry_client::events::Recorder;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use tokio_util::sync::CancellationToken;

pub use error::ControllerError;

/// Runs every workload controller against the apiserver `client` talks to, until `cancel`.
pub async fn run(client: kube::Client, cancel: CancellationToken) {
    let recorder_rs = Recorder::new(client.clone(), "replicaset-controller", "");
    let recorder_d = Recorder::new(client.clone(), "deployment-controller", "");
    let pods = informer::Informer::<Pod>::new(client.clone());
    let sets = informer::Informer::<ReplicaSet>::new(client.clone());
    let replicasets = replicaset::controller(client.clone(), &pods, recorder_rs, cancel.clone());
    let deployments = deployment::controller(client.clone(), &sets, recorder_d, cancel.clone());
    let accounts = serviceaccount::run(client, cancel.clone());
    tracing::info!("workload controllers started");
    tokio::join!(
        pods.run(cancel.clone()),
        sets.run(cancel.clone()),
        replicasets,
        deployments,
        accounts,
    );
    tracing::info!("workload controllers stopped");
}
