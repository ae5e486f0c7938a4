//! The peer figure of `just bench pods` for the `cri` runtime: what containerd itself takes to
//! start pods, driven straight over CRI with no apiserver, scheduler or node agent in the way.
//! For each pod: RunPodSandbox, then CreateContainer and StartContainer of one
//! `ferry.local/busybox:1` container running `sleep 3600`; first `--serial` pods one after
//! another, then `--burst` pods all at once (as a burst of bound pods reaches a node agent).
//! Prints JSON (per-pod latency p50/p99 and the burst's total), then stops and removes every
//! sandbox it made.
//!
//! `cargo run --release -p ferry-nodeagent --example cri_raw -- SOCKET [SERIAL] [BURST]`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ferry_nodeagent::runtime::cri::api;
use ferry_nodeagent::runtime::cri::client::CriClient;

fn sandbox_config(name: &str) -> api::PodSandboxConfig {
    api::PodSandboxConfig {
        metadata: Some(api::PodSandboxMetadata {
            name: name.to_owned(),
            uid: format!("raw-{name}"),
            namespace: "raw".to_owned(),
            attempt: 0,
        }),
        hostname: name.to_owned(),
        labels: HashMap::from([("ferry.dev/bench".to_owned(), "raw".to_owned())]),
        ..Default::default()
    }
}

/// Starts one pod; how long it took.
async fn start_pod(client: &CriClient, name: String) -> Result<Duration, String> {
    let started = Instant::now();
    let config = sandbox_config(&name);
    let sandbox = client
        .run_pod_sandbox(config.clone())
        .await
        .map_err(|e| e.to_string())?;
    let container = api::ContainerConfig {
        metadata: Some(api::ContainerMetadata {
            name: "c".to_owned(),
            attempt: 0,
        }),
        image: Some(api::ImageSpec {
            image: "ferry.local/busybox:1".to_owned(),
            user_specified_image: "ferry.local/busybox:1".to_owned(),
        }),
        command: vec!["sleep".to_owned(), "3600".to_owned()],
        ..Default::default()
    };
    let id = client
        .create_container(&sandbox, container, config)
        .await
        .map_err(|e| e.to_string())?;
    client
        .start_container(&id)
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.elapsed())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn summary(mut ms: Vec<f64>) -> serde_json::Value {
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::json!({
        "p50_ms": (percentile(&ms, 0.5) * 10.0).round() / 10.0,
        "p99_ms": (percentile(&ms, 0.99) * 10.0).round() / 10.0,
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let socket = args
        .next()
        .ok_or("usage: cri_raw SOCKET [SERIAL] [BURST]")?;
    let serial: usize = args.next().map_or(Ok(10), |a| a.parse())?;
    let burst: usize = args.next().map_or(Ok(100), |a| a.parse())?;
    let client = CriClient::new(std::path::Path::new(&socket));

    let mut one_at_a_time = Vec::new();
    for i in 0..serial {
        let took = start_pod(&client, format!("serial{i}")).await?;
        one_at_a_time.push(took.as_secs_f64() * 1000.0);
    }
    let t0 = Instant::now();
    let pods = (0..burst).map(|i| start_pod(&client, format!("burst{i}")));
    let results = futures::future::join_all(pods).await;
    let total = t0.elapsed();
    let mut burst_ms = Vec::new();
    for r in results {
        burst_ms.push(r?.as_secs_f64() * 1000.0);
    }
    println!(
        "{}",
        serde_json::json!({
            "one_at_a_time": summary(one_at_a_time),
            "burst": summary(burst_ms),
            "burst_all_running_s": (total.as_secs_f64() * 100.0).round() / 100.0,
        })
    );

    let mine = HashMap::from([("ferry.dev/bench".to_owned(), "raw".to_owned())]);
    for sandbox in client.list_pod_sandboxes(mine).await? {
        client.stop_pod_sandbox(&sandbox.id).await?;
        client.remove_pod_sandbox(&sandbox.id).await?;
    }
    Ok(())
}
