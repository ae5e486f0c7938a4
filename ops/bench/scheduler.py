#!/usr/bin/env python3
"""`just bench scheduler`: nodes and the scheduler.

1. The algorithm alone (reconciler/examples/schedbench.rs): 5,000 nodes, 10,000 pods with
   requests spread over 100 ReplicaSets: decisions/s; and the resident memory of the
   scheduler's cache with 5,000 nodes and 30,000 pods.
2. End to end on one machine: `ferry apiserver` (SQLite), one `ferry node --count 5000`
   process of hollow nodes, one `ferry controller`; the time to register the 5,000 nodes; then
   10,000 pods created by 16 clients: created -> bound throughput, p50/p99 latency (a watch
   sees the binding); the heartbeat load (5,000 Leases every 10 s: renewals/s and CPU); the
   resident memory of the node process and of the controller.

Prints a table and writes bench-results/scheduler.json. The goals are the issue's: kube-scheduler's
scheduler_perf threshold for this shape is 680 pods/s (x5 = 3,400); KWOK registers about 20
nodes per second.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from procs import cpu_seconds, get, post, ready_nodes, rss_mib, start_apiserver, stop_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FERRY = os.environ.get("FERRY_BIN", os.path.join(ROOT, "target", "release", "ferry"))
ALGO = os.environ.get("SCHEDBENCH_BIN", os.path.join(ROOT, "target", "release", "examples", "schedbench"))
RESULTS = os.path.join(ROOT, "bench-results", os.environ.get("BENCH_RESULTS", "scheduler.json"))
NODES = int(os.environ.get("NODES", "5000"))
PODS = int(os.environ.get("PODS", "10000"))
CLIENTS = 16
GOALS = {"decisions_per_s": 20_000, "e2e_pods_per_s": 3_400, "node_rss_mib": 150,
         "scheduler_rss_mib_30k": 200, "register_s": 5.0}




def pod(i):
    owner = i % 100
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"pod-{i}", "namespace": "bench", "labels": {"app": f"app-{owner}"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"rs-{owner}",
                                              "uid": f"uid-{owner}", "controller": True}]},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}


def algorithm():
    out = subprocess.run([ALGO], check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def end_to_end(work):
    procs = []
    api, base = start_apiserver(FERRY, work)
    procs.append(api)
    try:
        post(f"{base}/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        started = time.monotonic()
        node = subprocess.Popen([FERRY, "node", "--server", base, "--name", "hollow", "--count", str(NODES),
                                 "--capacity", "cpu=32,memory=128Gi,pods=110"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(node)
        while ready_nodes(base) < NODES:
            if time.monotonic() - started > 300:
                sys.exit("the nodes did not register within 300 s")
            time.sleep(0.2)
        register_s = time.monotonic() - started
        time.sleep(3)
        node_rss_idle = rss_mib(node.pid)
        controller = subprocess.Popen([FERRY, "controller", "--server", base, "--controllers", "scheduler,nodelifecycle"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(controller)
        while True:
            try:
                lease = get(f"{base}/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/ferry-controller-manager")
                if lease.get("spec", {}).get("holderIdentity"):
                    break
            except Exception:
                pass
            time.sleep(0.1)
        time.sleep(2)  # the scheduler's caches fill
        # The heartbeat load, idle: 20 s of CPU of the node process and the apiserver.
        node_cpu, api_cpu = cpu_seconds(node.pid), cpu_seconds(api.pid)
        time.sleep(20)
        heartbeat = {"leases_per_s": NODES / 10,
                     "node_cpu_pct": round((cpu_seconds(node.pid) - node_cpu) / 20 * 100, 1),
                     "apiserver_cpu_pct": round((cpu_seconds(api.pid) - api_cpu) / 20 * 100, 1)}
        rv = get(f"{base}/api/v1/namespaces/bench/pods")["metadata"]["resourceVersion"]
        bound = {}
        stop = threading.Event()

        def watch():
            url = f"{base}/api/v1/namespaces/bench/pods?watch=1&resourceVersion={rv}"
            with urllib.request.urlopen(url, timeout=600) as r:
                for line in r:
                    if stop.is_set():
                        return
                    ev = json.loads(line)
                    obj = ev.get("object", {})
                    name = obj.get("metadata", {}).get("name")
                    if obj.get("spec", {}).get("nodeName") and name not in bound:
                        bound[name] = time.monotonic()
                        if len(bound) >= PODS:
                            return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        time.sleep(0.5)
        created = {}

        def create(worker):
            for i in range(worker, PODS, CLIENTS):
                created[f"pod-{i}"] = time.monotonic()
                post(f"{base}/api/v1/namespaces/bench/pods", pod(i))

        t0 = time.monotonic()
        threads = [threading.Thread(target=create, args=(w,)) for w in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        create_s = time.monotonic() - t0
        watcher.join(timeout=300)
        stop.set()
        if len(bound) < PODS:
            sys.exit(f"only {len(bound)} of {PODS} pods were bound")
        last = max(bound.values())
        latencies = sorted((bound[n] - created[n]) * 1000 for n in created)
        result = {
            "nodes": NODES, "pods": PODS, "register_s": round(register_s, 2),
            "nodes_per_s": round(NODES / register_s),
            "create_s": round(create_s, 2),
            "e2e_pods_per_s": round(PODS / (last - t0)),
            "p50_ms": round(statistics.median(latencies), 1),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
            "heartbeat": heartbeat,
            "node_rss_idle_mib": round(node_rss_idle, 1),
            "node_rss_mib": round(rss_mib(node.pid), 1),
            "controller_rss_mib": round(rss_mib(controller.pid), 1),
            "apiserver_rss_mib": round(rss_mib(api.pid), 1),
        }
        return result
    finally:
        stop_all(procs)


def main():
    for binary in (FERRY, ALGO):
        if not os.path.exists(binary):
            sys.exit(f"build first: {binary} is missing (just bench scheduler builds it)")
    algo = algorithm()
    with tempfile.TemporaryDirectory(prefix="ferry-bench-scheduler-") as work:
        e2e = end_to_end(work)
    rows = [
        ("algorithm: decisions/s (5,000 nodes, 10,000 pods)", algo["decisions_per_s"], ">= 20,000"),
        ("algorithm: pods per node min / max", f'{algo["pods_per_node_min"]} / {algo["pods_per_node_max"]}', ""),
        ("scheduler cache RSS, 5,000 nodes + 30,000 pods (MiB)", algo["rss_mib_5000_nodes_30000_pods"], "<= 200"),
        ("register 5,000 hollow nodes (s)", e2e["register_s"], "< 5"),
        ("  nodes/s (KWOK: ~20)", e2e["nodes_per_s"], ""),
        ("end to end: created -> bound, pods/s", e2e["e2e_pods_per_s"], ">= 3,400"),
        ("  p50 (ms)", e2e["p50_ms"], ""),
        ("  p99 (ms)", e2e["p99_ms"], ""),
        ("heartbeats: Lease renewals/s", e2e["heartbeat"]["leases_per_s"], ""),
        ("  node process CPU while idle (%)", e2e["heartbeat"]["node_cpu_pct"], ""),
        ("  apiserver CPU while idle (%)", e2e["heartbeat"]["apiserver_cpu_pct"], ""),
        ("node process RSS, 5,000 hollow nodes, no pods (MiB)", e2e["node_rss_idle_mib"], "<= 150"),
        ("node process RSS, 5,000 nodes running 10,000 pods (MiB)", e2e["node_rss_mib"], ""),
        ("controller RSS, 5,000 nodes + 10,000 pods (MiB)", e2e["controller_rss_mib"], ""),
        ("apiserver RSS (MiB)", e2e["apiserver_rss_mib"], ""),
    ]
    print(f'{"measure":<58}{"ferry":>12}  goal')
    for name, value, goal in rows:
        print(f"{name:<58}{str(value):>12}  {goal}")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"algorithm": algo, "end_to_end": e2e, "goals": GOALS}, f, indent=2)
    print(f"-> {os.path.relpath(RESULTS, ROOT)}")


if __name__ == "__main__":
    main()
