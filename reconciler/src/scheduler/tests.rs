//! The scheduler's algorithm, queue and preemption on hand-made nodes and pods.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1 as core;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::algorithm::{Algorithm, FitError};
use super::cache::Cache;
use super::pod_info::PodInfo;
use super::preempt;
use super::queue::SchedulingQueue;

fn node(name: &str, cpu: &str, extra: Value) -> Arc<core::Node> {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}},
    });
    merge(&mut n, &extra);
    Arc::new(serde_json::from_value(n).expect("node"))
}

fn merge(target: &mut Value, extra: &Value) {
    if let (Value::Object(t), Value::Object(e)) = (target, extra) {
        for (k, v) in e {
            match t.get_mut(k) {
                Some(existing) if existing.is_object() && v.is_object() => merge(existing, v),
                _ => {
                    t.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

fn pod(name: &str, cpu: &str, spec: Value) -> Arc<PodInfo> {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu}}}]},
    });
    merge(&mut p, &json!({"spec": spec}));
    Arc::new(PodInfo::of(&serde_json::from_value(p).expect("pod")).expect("pod info"))
}

fn cluster(nodes: &[Arc<core::Node>]) -> Cache {
    let mut cache = Cache::default();
    for n in nodes {
        cache.upsert_node(n.clone());
    }
    cache
}

fn place(cache: &mut Cache, algo: &mut Algorithm, p: Arc<PodInfo>) -> Result<String, FitError> {
    let node = algo.schedule(&p, cache)?;
    cache.place(p, &node);
    Ok(node)
}

#[test]
fn resources_fit_and_the_message_is_kube_schedulers() {
    let gpu_taint =
        json!({"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}});
    let mut cache = cluster(&[
        node("a", "1", json!({})),
        node("b", "1", json!({})),
        node("c", "1", json!({})),
        node("d", "64", gpu_taint.clone()),
        node("e", "64", gpu_taint),
    ]);
    let mut algo = Algorithm::default();
    let err = algo
        .schedule(&pod("big", "2", json!({})), &cache)
        .expect_err("fits nowhere");
    assert_eq!(
        err.to_string(),
        "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu."
    );
    // Tolerating the taint, it goes to a big node.
    let tolerant = pod(
        "big",
        "2",
        json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
    );
    let chosen = place(&mut cache, &mut algo, tolerant).expect("fits");
    assert!(chosen == "d" || chosen == "e", "{chosen}");
    // Exact sums: ten pods of 100m fill a 1-cpu node; the eleventh does not fit there.
    let mut cache = cluster(&[node("small", "1", json!({}))]);
    for i in 0..10 {
        place(
            &mut cache,
            &mut algo,
            pod(&format!("p{i}"), "100m", json!({})),
        )
        .expect("fits");
    }
    assert!(place(&mut cache, &mut algo, pod("p10", "100m", json!({}))).is_err());
}

#[test]
fn selectors_affinity_cordons_and_ports() {
    let mut cache = cluster(&[
        node(
            "ssd",
            "4",
            json!({"metadata": {"labels": {"disk": "ssd", "zone": "a", "cores": "16"}}}),
        ),
        node(
            "hdd",
            "4",
            json!({"metadata": {"labels": {"disk": "hdd", "zone": "b", "cores": "4"}}}),
        ),
        node(
            "off",
            "4",
            json!({"metadata": {"labels": {"disk": "ssd"}}, "spec": {"unschedulable": true}}),
        ),
    ]);
    let mut algo = Algorithm::default();
    for _ in 0..5 {
        let p = pod("sel", "1m", json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(
            algo.schedule(&p, &cache).expect("fits"),
            "ssd",
            "a cordoned node gets nothing"
        );
    }
    let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["8"]}]}
    ]}}}});
    assert_eq!(
        algo.schedule(&pod("aff", "1m", affinity), &cache)
            .expect("fits"),
        "hdd"
    );
    let nowhere = json!({"nodeSelector": {"disk": "nvme"}});
    let err = algo
        .schedule(&pod("none", "1m", nowhere), &cache)
        .expect_err("no match");
    assert_eq!(
        err.to_string(),
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector."
    );
    // Host ports: the second pod wanting port 80 goes elsewhere.
    let port =
        json!({"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80}]}]});
    let first = place(&mut cache, &mut algo, pod("h1", "1m", port.clone())).expect("fits");
    let second = place(&mut cache, &mut algo, pod("h2", "1m", port.clone())).expect("fits");
    assert_ne!(first, second);
    let err = algo
        .schedule(&pod("h3", "1m", port), &cache)
        .expect_err("ports taken");
    assert!(
        err.to_string().contains("2 node(s) didn't have free ports"),
        "{err}"
    );
}

#[test]
fn inter_pod_affinity_anti_affinity_and_spread() {
    let zone = |n: &str, z: &str| node(n, "8", json!({"metadata": {"labels": {"zone": z}}}));
    let mut cache = cluster(&[zone("a1", "a"), zone("a2", "a"), zone("b1", "b")]);
    let mut algo = Algorithm::default();
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    ]}}});
    let mut used = Vec::new();
    for i in 0..3 {
        used.push(
            place(
                &mut cache,
                &mut algo,
                pod(&format!("w{i}"), "1m", anti.clone()),
            )
            .expect("fits"),
        );
    }
    used.sort();
    assert_eq!(used, ["a1", "a2", "b1"], "one per node");
    let err = algo
        .schedule(&pod("w3", "1m", anti), &cache)
        .expect_err("full");
    assert!(
        err.to_string()
            .contains("didn't match pod anti-affinity rules"),
        "{err}"
    );
    // Affinity to a labelled pod's zone.
    let mut db = pod("db", "1m", json!({"nodeSelector": {"zone": "b"}}));
    Arc::make_mut(&mut Arc::make_mut(&mut db).labels).insert("app".into(), "db".into());
    place(&mut cache, &mut algo, db).expect("db");
    let near = json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
    ]}}});
    let mut p = pod("near", "1m", near);
    Arc::make_mut(&mut Arc::make_mut(&mut p).labels).insert("app".into(), "api".into());
    assert_eq!(algo.schedule(&p, &cache).expect("fits"), "b1");
    // Topology spread, DoNotSchedule, maxSkew 1 over zones: a, b, a, b...
    let mut cache = cluster(&[zone("a1", "a"), zone("a2", "a"), zone("b1", "b")]);
    let spread = json!({"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}
    ]});
    let mut zones = std::collections::BTreeMap::new();
    for i in 0..6 {
        let n = place(
            &mut cache,
            &mut algo,
            pod(&format!("s{i}"), "1m", spread.clone()),
        )
        .expect("fits");
        *zones
            .entry(
                cache
                    .node(&n)
                    .and_then(|n| n.labels.get("zone").cloned())
                    .unwrap_or_default(),
            )
            .or_insert(0) += 1;
    }
    assert_eq!(zones.values().copied().collect::<Vec<_>>(), [3, 3]);
}

#[test]
fn replicas_of_one_owner_spread_over_nodes() {
    let mut cache = cluster(&[
        node("n1", "8", json!({})),
        node("n2", "8", json!({})),
        node("n3", "8", json!({})),
    ]);
    let mut algo = Algorithm::default();
    let owned = |i: usize| {
        let p = json!({"metadata": {"name": format!("r{i}"), "namespace": "default",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}]},
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "10m"}}}]}});
        Arc::new(PodInfo::of(&serde_json::from_value(p).expect("pod")).expect("info"))
    };
    let mut counts = std::collections::BTreeMap::new();
    for i in 0..9 {
        let n = place(&mut cache, &mut algo, owned(i)).expect("fits");
        *counts.entry(n).or_insert(0) += 1;
    }
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{counts:?}"
    );
}

#[test]
fn preemption_evicts_the_cheapest_lower_priority_pods() {
    let mut cache = cluster(&[node("n1", "1", json!({})), node("n2", "1", json!({}))]);
    let mut algo = Algorithm::default();
    let prio = |name: &str, cpu: &str, p: i32| pod(name, cpu, json!({"priority": p}));
    cache.place(prio("low-a", "600m", 1), "n1");
    cache.place(prio("low-b", "300m", 1), "n1");
    cache.place(prio("mid", "900m", 50), "n2");
    let urgent = prio("urgent", "500m", 100);
    assert!(algo.schedule(&urgent, &cache).is_err());
    let p = preempt::find(&urgent, &cache).expect("a preemption");
    assert_eq!(
        p.node, "n1",
        "lower-priority victims win over the priority-50 pod"
    );
    let victims: Vec<&str> = p.victims.iter().map(|v| v.key.as_str()).collect();
    assert_eq!(victims, ["default/low-a"], "only what is needed is evicted");
    let never = pod(
        "polite",
        "500m",
        json!({"priority": 100, "preemptionPolicy": "Never"}),
    );
    assert!(preempt::find(&never, &cache).is_none());
}

#[tokio::test(start_paused = true)]
async fn the_queue_orders_by_priority_then_age_and_backs_off() {
    let mut q = SchedulingQueue::default();
    let p = |name: &str, prio: i32, created: &str| {
        let v = json!({"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": {"priority": prio, "containers": [{"name": "c"}]}});
        Arc::new(PodInfo::of(&serde_json::from_value(v).expect("pod")).expect("info"))
    };
    q.add(p("old-low", 0, "2026-01-01T00:00:00Z"));
    q.add(p("new-high", 10, "2026-01-02T00:00:00Z"));
    q.add(p("new-low", 0, "2026-01-02T00:00:00Z"));
    let now = Instant::now();
    let order: Vec<String> = std::iter::from_fn(|| q.pop(now).map(|p| p.key.clone())).collect();
    assert_eq!(
        order,
        ["default/new-high", "default/old-low", "default/new-low"]
    );
    // Back-off: 1 s, then 2 s, ..., at most 10 s.
    q.failed("default/old-low", now);
    assert!(q.pop(now).is_none());
    tokio::time::advance(Duration::from_millis(1001)).await;
    let again = q.pop(Instant::now()).expect("due after 1 s");
    assert_eq!(again.key, "default/old-low");
    q.failed("default/old-low", Instant::now());
    assert_eq!(q.next_due(), Some(Instant::now() + Duration::from_secs(2)));
    for _ in 0..10 {
        tokio::time::advance(Duration::from_secs(10)).await;
        q.pop(Instant::now()).expect("due");
        q.failed("default/old-low", Instant::now());
    }
    assert_eq!(q.next_due(), Some(Instant::now() + Duration::from_secs(10)));
    // A node joining sends it back at once.
    q.cluster_changed();
    assert!(q.pop(Instant::now()).is_some());
}

#[test]
fn placed_pods_keep_one_copy_of_their_labels_and_not_their_placement_rules() {
    let mut cache = cluster(&[node("n1", "8", json!({})), node("n2", "8", json!({}))]);
    let toleration = json!({"tolerations": [{"key": "k", "operator": "Exists"}]});
    let a = pod("a", "1m", toleration.clone());
    assert_eq!(a.tolerations.len(), 1);
    cache.place(a, "n1");
    cache.place(pod("b", "1m", toleration), "n2");
    let placed = |node: &str| cache.node(node).expect("node").pods[0].clone();
    let (a, b) = (placed("n1"), placed("n2"));
    assert!(Arc::ptr_eq(&a.labels, &b.labels), "one shared label set");
    assert_eq!(a.labels.get("app").map(String::as_str), Some("web"));
    assert!(
        a.tolerations.is_empty(),
        "a placed pod's own rules are not kept"
    );
    assert_eq!(a.requests.milli_cpu, 1);
    assert_eq!(cache.label_sets(), 1);
    drop((a, b));
    cache.unplace("default/a");
    assert_eq!(cache.label_sets(), 1, "b still carries them");
    cache.unplace("default/b");
    assert_eq!(cache.label_sets(), 0, "forgotten with the last pod");
}

#[test]
fn the_cache_keeps_of_a_node_what_placement_reads() {
    let heartbeat = json!({
        "metadata": {"labels": {"zone": "a"}, "annotations": {"note": "x"}},
        "spec": {"taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "8", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        },
    });
    let cache = cluster(&[node("n1", "4", heartbeat)]);
    let info = cache.node("n1").expect("node");
    let status = info.node.status.as_ref().expect("status");
    assert!(status.conditions.is_none() && status.addresses.is_none());
    assert!(status.capacity.is_none(), "allocatable is reported");
    assert!(info.node.metadata.annotations.is_none());
    assert_eq!(info.labels.get("zone").map(String::as_str), Some("a"));
    assert_eq!(info.taints.len(), 1);
    assert_eq!(info.allocatable.milli_cpu, 4000);

    // A node reporting only capacity is offered by it.
    let mut bare =
        json!({"metadata": {"name": "n2"}, "status": {"capacity": {"cpu": "2", "pods": "10"}}});
    bare["spec"] = json!({});
    let mut cache = Cache::default();
    cache.upsert_node(Arc::new(serde_json::from_value(bare).expect("node")));
    assert_eq!(cache.node("n2").expect("node").allocatable.milli_cpu, 2000);
}
