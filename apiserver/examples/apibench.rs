//! Load generator for `just bench apiserver` (driven by `ops/bench/apiserver.py`, which starts
//! the server on each engine). Measures, against a running ferry apiserver:
//! - creates per second with 16 concurrent clients (ConfigMaps of about 1.5 KB), p50/p99, as
//!   the median of `--rounds` rounds (default 3) on a growing store;
//! - p99 of a create at a steady 1,000 writes per second;
//! - the time to list 10,000 pods;
//! - watch delivery latency (write sent to event received) across 100 watchers;
//! - paging through 10,000 pods with a label selector, 500 a page;
//! - listing 10,000 ConfigMaps and 10,000 custom resources of the same size.
//!
//! usage: apibench URL [--creates N] [--rounds R] | apibench URL --fill N. Prints one JSON
//! object.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::sync::Mutex;

type Http = Client<HttpConnector, Full<Bytes>>;

fn client() -> Http {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build_http()
}

async fn send(
    http: &Http,
    method: Method,
    url: &str,
    body: Option<String>,
) -> Result<(u16, Bytes), String> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| e.to_string())?;
    let response = http.request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, bytes))
}

fn configmap(name: &str) -> String {
    let payload = "x".repeat(1400);
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "bench", "labels": {"app": "bench"}}, "data": {"payload": payload}}).to_string()
}

fn pod(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "bench", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:1.0", "ports": [{"containerPort": 8080}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}).to_string()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn stats(mut ms: Vec<f64>) -> Value {
    ms.sort_by(|a, b| a.total_cmp(b));
    json!({"count": ms.len(), "p50_ms": percentile(&ms, 0.5), "p99_ms": percentile(&ms, 0.99), "max_ms": ms.last().copied().unwrap_or(0.0)})
}

async fn create_many(
    http: &Http,
    base: &str,
    collection: &str,
    prefix: &str,
    total: usize,
    clients: usize,
    make: fn(&str) -> String,
) -> (f64, Vec<f64>) {
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, next, latencies) = (http.clone(), next.clone(), latencies.clone());
        let url = format!("{base}{collection}");
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                match send(
                    &http,
                    Method::POST,
                    &url,
                    Some(make(&format!("{prefix}-{i}"))),
                )
                .await
                {
                    Ok((201, _)) => mine.push(t.elapsed().as_secs_f64() * 1000.0),
                    Ok((code, body)) => {
                        panic!("create returned {code}: {}", String::from_utf8_lossy(&body))
                    }
                    Err(e) => panic!("create failed: {e}"),
                }
            }
            latencies.lock().await.extend(mine);
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let latencies = std::mem::take(&mut *latencies.lock().await);
    (total as f64 / elapsed, latencies)
}

async fn steady_rate(http: &Http, base: &str, per_second: usize, seconds: u64) -> Vec<f64> {
    let url = format!("{base}/api/v1/namespaces/bench/configmaps");
    let interval = Duration::from_secs_f64(1.0 / per_second as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..(per_second * seconds as usize) {
        ticker.tick().await;
        let (http, url, latencies) = (http.clone(), url.clone(), latencies.clone());
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            if let Ok((201, _)) = send(
                &http,
                Method::POST,
                &url,
                Some(configmap(&format!("steady-{i}"))),
            )
            .await
            {
                latencies
                    .lock()
                    .await
                    .push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    std::mem::take(&mut *latencies.lock().await)
}

async fn watch_latency(http: &Http, base: &str, watchers: usize, events: usize) -> Vec<f64> {
    let (_, body) = send(
        http,
        Method::GET,
        &format!("{base}/api/v1/namespaces/bench/secrets"),
        None,
    )
    .await
    .expect("list");
    let list: Value = serde_json::from_slice(&body).expect("list JSON");
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("0")
        .to_owned();
    let sent: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; events]));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let ready = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let (http, sent, latencies, ready) =
            (http.clone(), sent.clone(), latencies.clone(), ready.clone());
        let url = format!("{base}/api/v1/namespaces/bench/secrets?watch=true&resourceVersion={rv}");
        tasks.push(tokio::spawn(async move {
            let request = Request::builder()
                .uri(url)
                .body(Full::new(Bytes::new()))
                .expect("request");
            let response = http.request(request).await.expect("watch");
            ready.fetch_add(1, Ordering::SeqCst);
            let mut body = response.into_body();
            let (mut buffer, mut seen) = (Vec::new(), 0);
            while seen < events {
                let Some(Ok(frame)) = body.frame().await else {
                    break;
                };
                let now = Instant::now();
                if let Ok(data) = frame.into_data() {
                    buffer.extend_from_slice(&data);
                    while let Some(pos) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=pos).collect();
                        let event: Value = serde_json::from_slice(&line).unwrap_or_default();
                        let i: usize = event["object"]["metadata"]["name"]
                            .as_str()
                            .and_then(|n| n.strip_prefix("w-"))
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(usize::MAX);
                        if let Some(Some(at)) = sent.lock().await.get(i).copied() {
                            latencies
                                .lock()
                                .await
                                .push(now.saturating_duration_since(at).as_secs_f64() * 1000.0);
                        }
                        seen += 1;
                    }
                }
            }
        }));
    }
    while ready.load(Ordering::SeqCst) < watchers {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let url = format!("{base}/api/v1/namespaces/bench/secrets");
    for i in 0..events {
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("w-{i}"), "namespace": "bench"}, "stringData": {"k": "v"}}).to_string();
        // The clock starts before the write is sent: commit and delivery are both counted.
        sent.lock().await[i] = Some(Instant::now());
        let (code, _) = send(http, Method::POST, &url, Some(body))
            .await
            .expect("create");
        assert_eq!(code, 201);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }
    std::mem::take(&mut *latencies.lock().await)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:6443".into());
    let creates: usize = args
        .iter()
        .position(|a| a == "--creates")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let http = client();
    let ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}}).to_string();
    let _ = send(
        &http,
        Method::POST,
        &format!("{base}/api/v1/namespaces"),
        Some(ns),
    )
    .await;

    if let Some(fill) = args
        .iter()
        .position(|a| a == "--fill")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse::<usize>().ok())
    {
        // Only create `fill` more objects (for memory measurements), then report the rate.
        let (rate, _) = create_many(&http, &base, CONFIGMAPS, "fill", fill, 16, configmap).await;
        println!(
            "{}",
            json!({"filled": fill, "creates_per_second": rate.round()})
        );
        return;
    }
    // Creates in rounds on a growing store: the median round is the figure (these machines
    // are shared and noisy), and the rounds in order show whether the rate falls as it grows.
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(3)
        .max(1);
    let mut round_rates = Vec::new();
    let mut latencies = Vec::new();
    for round in 0..rounds {
        let prefix = format!("cm{round}");
        let (rate, mut round_latencies) = create_many(
            &http,
            &base,
            CONFIGMAPS,
            &prefix,
            creates / rounds,
            16,
            configmap,
        )
        .await;
        round_rates.push(rate.round());
        latencies.append(&mut round_latencies);
    }
    let mut sorted = round_rates.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let creates_per_second = sorted[sorted.len() / 2];
    let steady = steady_rate(&http, &base, 1000, 5).await;
    let (_, _) = create_many(
        &http,
        &base,
        "/api/v1/namespaces/bench/pods",
        "pod",
        10_000,
        16,
        pod,
    )
    .await;
    let mut list_ms = Vec::new();
    for _ in 0..5 {
        // Timed: the request and the whole response received. Not timed: checking it.
        let t = Instant::now();
        let (code, body) = send(
            &http,
            Method::GET,
            &format!("{base}/api/v1/namespaces/bench/pods"),
            None,
        )
        .await
        .expect("list");
        list_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(code, 200);
        let list: Value = serde_json::from_slice(&body).expect("list JSON");
        assert_eq!(list["items"].as_array().map_or(0, Vec::len), 10_000);
    }
    let watch = watch_latency(&http, &base, 100, 200).await;
    let paged = paged_list(
        &http,
        &base,
        "/api/v1/namespaces/bench/pods?labelSelector=app%3Dbench",
        500,
        10_000,
    )
    .await;
    let (configmaps, widgets) = lists_of_ten_thousand(&http, &base).await;
    let result = json!({
        "creates_per_second_16_clients": creates_per_second,
        "create_rounds_per_second": round_rates,
        "create_latency": stats(latencies),
        "create_latency_at_1000_per_second": stats(steady),
        "list_10000_pods": stats(list_ms),
        "watch_delivery_100_watchers": stats(watch),
        "paged_selector_list_10000_pods_by_500": stats(paged),
        "list_10000_configmaps": stats(configmaps),
        "list_10000_custom_resources": stats(widgets),
    });
    println!("{result}");
}

/// The ConfigMaps of the create rounds.
const CONFIGMAPS: &str = "/api/v1/namespaces/bench/configmaps";

/// Pages through a selector list `limit` at a time, five times; the times for the whole list.
async fn paged_list(http: &Http, base: &str, path: &str, limit: usize, expect: usize) -> Vec<f64> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (mut token, mut seen) = (String::new(), 0);
        loop {
            let url = format!("{base}{path}&limit={limit}&continue={token}");
            let (code, body) = send(http, Method::GET, &url, None).await.expect("page");
            assert_eq!(code, 200);
            let page: Value = serde_json::from_slice(&body).expect("page JSON");
            seen += page["items"].as_array().map_or(0, Vec::len);
            match page["metadata"]["continue"].as_str() {
                Some(next) => token = next.to_owned(),
                None => break,
            }
        }
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(seen, expect, "the pages hold every object");
    }
    times
}

fn small_configmap(name: &str) -> String {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "lists"},
        "data": {"size": "3", "color": "red", "owner": "team-a"}}).to_string()
}

fn widget(name: &str) -> String {
    json!({"apiVersion": "bench.ferry.dev/v1", "kind": "Widget", "metadata": {"name": name, "namespace": "lists"},
        "spec": {"size": 3, "color": "red", "owner": "team-a"}}).to_string()
}

/// Lists 10,000 ConfigMaps and 10,000 custom resources of the same size, five times each.
async fn lists_of_ten_thousand(http: &Http, base: &str) -> (Vec<f64>, Vec<f64>) {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "lists"}});
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.bench.ferry.dev"},
        "spec": {"group": "bench.ferry.dev", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {
                "type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "size": {"type": "integer"}, "color": {"type": "string"}, "owner": {"type": "string"}}}}}}}]}});
    for (path, body) in [
        ("/api/v1/namespaces", ns),
        (
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            crd,
        ),
    ] {
        let (code, out) = send(
            http,
            Method::POST,
            &format!("{base}{path}"),
            Some(body.to_string()),
        )
        .await
        .expect("setup");
        assert!(
            code == 201 || code == 409,
            "setup {path}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    let configmaps = "/api/v1/namespaces/lists/configmaps";
    let widgets = "/apis/bench.ferry.dev/v1/namespaces/lists/widgets";
    create_many(http, base, configmaps, "cm", 10_000, 16, small_configmap).await;
    create_many(http, base, widgets, "w", 10_000, 16, widget).await;
    let mut times = (Vec::new(), Vec::new());
    for _ in 0..5 {
        for (collection, out) in [(configmaps, &mut times.0), (widgets, &mut times.1)] {
            let t = Instant::now();
            let (code, body) = send(http, Method::GET, &format!("{base}{collection}"), None)
                .await
                .expect("list");
            out.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(code, 200);
            let list: Value = serde_json::from_slice(&body).expect("list JSON");
            assert_eq!(list["items"].as_array().map_or(0, Vec::len), 10_000);
        }
    }
    times
}
