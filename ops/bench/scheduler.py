#!/usr/bin/env python3
"""`just bench scheduler`: nodes and the scheduler.

1. The algorithm alone (reconciler/examples/schedbench.rs): 5,000 nodes, 10,000 pods with
   requests spread over 100 ReplicaSets: decisions/s; and the resident memory of the
   scheduler's cache with 5,000 nodes and 30,000 pods.
2. End to end on one machine: `ferry apiserver` (SQLite), one `ferry node --count 5000`
   process of hollow nodes, one `ferry controller`; the time to register the 5,000 nodes; then
   10,000 pods created by 16 clients (reconciler/examples/podload.rs, kube clients): created
   -> bound throughput, p50/p99 latency (a watch sees the binding); the heartbeat load (5,000
   Leases every 10 s: renewals/s and CPU); the resident memory of the node process and of the
   controller.

Prints a table and writes bench-results/scheduler.json. The goals are the issue's: kube-scheduler's
scheduler_perf threshold for this shape is 680 pods/s (x5 = 3,400); KWOK registers about 20
nodes per second.
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

from procs import cpu_seconds, get, post, ready_nodes, rss_mib, start_apiserver, stop_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FERRY = os.environ.get("FERRY_BIN", os.path.join(ROOT, "target", "release", "ferry"))
ALGO = os.environ.get("SCHEDBENCH_BIN", os.path.join(ROOT, "target", "release", "examples", "schedbench"))
PODLOAD = os.environ.get("PODLOAD_BIN", os.path.join(ROOT, "target", "release", "examples", "podload"))
RESULTS = os.path.join(ROOT, "bench-results", os.environ.get("BENCH_RESULTS", "scheduler.json"))
NODES = int(os.environ.get("NODES", "5000"))
PODS = int(os.environ.get("PODS", "10000"))
CLIENTS = 16
GOALS = {"decisions_per_s": 20_000, "e2e_pods_per_s": 3_400, "node_rss_mib": 150,
         "scheduler_rss_mib_30k": 200, "register_s": 5.0}


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
        # The load is a Rust program (kube clients on kept-alive connections, one watch), so
        # that the clients take little of the two cores the measured processes share.
        # Where the CPU goes while the pods are created and bound: each process's CPU seconds
        # over the load, per pod (the machine's two cores bound the sum).
        before = {name: cpu_seconds(p.pid) for name, p in (("apiserver", api), ("node", node), ("controller", controller))}
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        out = subprocess.run([PODLOAD, base, "--pods", str(PODS), "--clients", str(CLIENTS)],
                             check=True, capture_output=True, text=True, timeout=900).stdout
        wall = time.monotonic() - t0
        load = json.loads(out)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = {name: cpu_seconds(p.pid) - before[name] for name, p in (("apiserver", api), ("node", node), ("controller", controller))}
        cpu["clients"] = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        cpu_ms_per_pod = {name: round(seconds * 1000 / PODS, 2) for name, seconds in cpu.items()}
        cpu_ms_per_pod["total"] = round(sum(cpu.values()) * 1000 / PODS, 2)
        cpu_ms_per_pod["machine_share"] = round(sum(cpu.values()) / (wall * (os.cpu_count() or 1)), 2)
        result = {
            "nodes": NODES, "pods": PODS, "register_s": round(register_s, 2),
            "nodes_per_s": round(NODES / register_s),
            "create_s": load["create_s"],
            "creates_per_s": load["creates_per_s"],
            "e2e_pods_per_s": load["e2e_pods_per_s"],
            "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"],
            "cpu_ms_per_pod": cpu_ms_per_pod,
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
    for binary in (FERRY, ALGO, PODLOAD):
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
        ("end to end: creates/s (16 clients)", e2e["creates_per_s"], ""),
        ("end to end: created -> bound, pods/s", e2e["e2e_pods_per_s"], ">= 3,400"),
        ("  p50 (ms)", e2e["p50_ms"], ""),
        ("  p99 (ms)", e2e["p99_ms"], ""),
        ("  CPU ms per pod: apiserver / node / controller / clients",
         " / ".join(str(e2e["cpu_ms_per_pod"][k]) for k in ("apiserver", "node", "controller", "clients")), ""),
        ("  CPU ms per pod, all; share of the machine's cores used",
         f'{e2e["cpu_ms_per_pod"]["total"]}; {e2e["cpu_ms_per_pod"]["machine_share"]}', ""),
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
