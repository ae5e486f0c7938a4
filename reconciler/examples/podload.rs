//! `just bench scheduler` (end-to-end half): the load of `ops/bench/scheduler.py`. Against a
//! running apiserver whose nodes and scheduler are up, it creates `--pods` pods in the
//! namespace `bench` from `--clients` concurrent clients (each a `kube::Client` of its own, as
//! separate programs would be), while one watch of the namespace's pods records when each pod
//! is first seen bound (`spec.nodeName`). Prints one JSON object: how long the creates took,
//! pods bound per second from the first create to the last binding, and created → bound
//! latency p50/p99.
//!
//! usage: podload URL [--pods N] [--clients C] [--deadline SECONDS]
//!
//! The pods are those of the algorithm bench (`schedbench`, `common/bench_pod.rs`).

#[path = "common/bench_pod.rs"]
mod bench_pod;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;

/// The bench's arguments.
struct Args {
    url: String,
    pods: usize,
    clients: usize,
    deadline: Duration,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let url = it
        .next()
        .ok_or("usage: podload URL [--pods N] [--clients C]")?;
    let mut args = Args {
        url,
        pods: 10_000,
        clients: 16,
        deadline: Duration::from_secs(300),
    };
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number: u64 = value.parse().map_err(|e| format!("{flag} {value}: {e}"))?;
        match flag.as_str() {
            "--pods" => args.pods = number as usize,
            "--clients" => args.clients = (number as usize).max(1),
            "--deadline" => args.deadline = Duration::from_secs(number),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn client(url: &str) -> Result<kube::Client, String> {
    let uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let mut config = kube::Config::new(uri);
    config.read_timeout = Some(Duration::from_secs(600));
    kube::Client::try_from(config).map_err(|e| e.to_string())
}

fn pod(i: usize) -> Result<Pod, String> {
    serde_json::from_value(bench_pod::bench_pod(i)).map_err(|e| e.to_string())
}

/// When each pod was first seen bound, until every one of `pods` is.
async fn watch_bindings(
    api: Api<Pod>,
    from: String,
    pods: usize,
    bound: Arc<Mutex<HashMap<String, Instant>>>,
) -> Result<(), String> {
    let params = WatchParams::default().timeout(290);
    let mut version = from;
    loop {
        let mut events = api
            .watch(&params, &version)
            .await
            .map_err(|e| format!("watch: {e}"))?
            .boxed();
        while let Some(event) = events.try_next().await.map_err(|e| format!("watch: {e}"))? {
            let pod = match event {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => p,
                WatchEvent::Bookmark(b) => {
                    version = b.metadata.resource_version;
                    continue;
                }
                WatchEvent::Deleted(_) => continue,
                WatchEvent::Error(e) => return Err(format!("watch: {e}")),
            };
            if let Some(rv) = &pod.metadata.resource_version {
                version.clone_from(rv);
            }
            let on_node = pod.spec.as_ref().and_then(|s| s.node_name.as_ref());
            if let (Some(_), Some(name)) = (on_node, pod.metadata.name) {
                let mut bound = bound.lock().map_err(|_| "poisoned")?;
                bound.entry(name).or_insert_with(Instant::now);
                if bound.len() >= pods {
                    return Ok(());
                }
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at]
}

async fn run(args: Args) -> Result<serde_json::Value, String> {
    let api: Api<Pod> = Api::namespaced(client(&args.url)?, "bench");
    let listed = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .map_err(|e| format!("list: {e}"))?;
    let from = listed.metadata.resource_version.unwrap_or_default();
    let bound = Arc::new(Mutex::new(HashMap::with_capacity(args.pods)));
    let watcher = tokio::spawn(watch_bindings(api.clone(), from, args.pods, bound.clone()));

    let t0 = Instant::now();
    let mut creators = Vec::with_capacity(args.clients);
    for worker in 0..args.clients {
        let api: Api<Pod> = Api::namespaced(client(&args.url)?, "bench");
        let (pods, clients) = (args.pods, args.clients);
        creators.push(tokio::spawn(async move {
            let mut sent = Vec::with_capacity(pods / clients + 1);
            for i in (worker..pods).step_by(clients) {
                let body = pod(i)?;
                let at = Instant::now();
                api.create(&PostParams::default(), &body)
                    .await
                    .map_err(|e| format!("create pod-{i}: {e}"))?;
                sent.push((format!("pod-{i}"), at));
            }
            Ok::<_, String>(sent)
        }));
    }
    let mut created = HashMap::with_capacity(args.pods);
    for creator in creators {
        let sent = creator.await.map_err(|e| e.to_string())??;
        created.extend(sent);
    }
    let create_s = t0.elapsed().as_secs_f64();

    match tokio::time::timeout(args.deadline, watcher).await {
        Ok(joined) => joined.map_err(|e| e.to_string())??,
        Err(_) => {
            let seen = bound.lock().map_err(|_| "poisoned")?.len();
            return Err(format!(
                "only {seen} of {} pods were bound within {:?}",
                args.pods, args.deadline
            ));
        }
    }
    let bound = bound.lock().map_err(|_| "poisoned")?;
    let last = bound.values().max().copied().unwrap_or(t0);
    let mut latencies: Vec<f64> = created
        .iter()
        .filter_map(|(name, at)| bound.get(name).map(|b| (*b - *at).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    Ok(json!({
        "pods": args.pods,
        "clients": args.clients,
        "create_s": round(create_s),
        "creates_per_s": (args.pods as f64 / create_s).round(),
        "e2e_pods_per_s": (args.pods as f64 / (last - t0).as_secs_f64()).round(),
        "p50_ms": round(percentile(&latencies, 0.5)),
        "p99_ms": round(percentile(&latencies, 0.99)),
    }))
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let outcome = match args() {
        Ok(args) => run(args).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(result) => {
            println!("{result}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("podload: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
