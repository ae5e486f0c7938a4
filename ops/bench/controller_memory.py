#!/usr/bin/env python3
"""`just bench controller_memory`: where `ferry controller`'s memory goes, loop by loop.

On one machine: `ferry apiserver` (SQLite), 100 hollow nodes in one `ferry node` process, and
PODS pods (default 30,000) of one ReplicaSet, bound to the nodes and Running. Then
`ferry controller --controllers SET` is started for each SET in turn (the scheduler alone, the
shared pod cache behind the ReplicaSet loop, the garbage collector alone, every loop), and its
resident memory is read once it has listed everything and settled (30 s).

PODS and SETS (comma-separated, `;` between sets) override the sizes. Prints a table and writes
bench-results/controller_memory.json.
"""
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import time

from procs import get, post, ready_nodes, rss_mib, start_apiserver, stop_all

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FERRY = os.environ.get("FERRY_BIN", os.path.join(ROOT, "target", "release", "ferry"))
RESULTS = os.path.join(ROOT, "bench-results", os.environ.get("BENCH_RESULTS", "controller_memory.json"))
PODS = int(os.environ.get("PODS", "30000"))
NODES = 100
SETS = os.environ.get("SETS", "scheduler;replicaset;garbagecollector;*").split(";")
SETTLE_S = 30
GOAL_MIB = 238.4  # the 250 MB
RS = "density-abcdef1234"


def pod(i, rs_uid):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{RS}-{i:05d}", "namespace": "bench",
                         "labels": {"app": "density", "pod-template-hash": "abcdef1234"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": RS,
                                              "uid": rs_uid, "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"nodeName": f"hollow-{i % NODES}",
                     "containers": [{"name": "c", "image": "busybox:1",
                                     "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}]}}


def running(base):
    url = f"{base}/api/v1/namespaces/bench/pods?fieldSelector=status.phase=Running"
    return len(get(url)["items"])


def main():
    procs = []
    results = {}
    with tempfile.TemporaryDirectory(prefix="ferry-bench-controller-memory-") as work:
        api, base = start_apiserver(FERRY, work)
        procs.append(api)
        try:
            post(f"{base}/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
            post(f"{base}/apis/apps/v1/namespaces/bench/replicasets", {
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": RS, "namespace": "bench"},
                "spec": {"replicas": PODS, "selector": {"matchLabels": {"app": "density"}},
                         "template": {"metadata": {"labels": {"app": "density", "pod-template-hash": "abcdef1234"}},
                                      "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}}})
            rs_uid = get(f"{base}/apis/apps/v1/namespaces/bench/replicasets/{RS}")["metadata"]["uid"]
            procs.append(subprocess.Popen(
                [FERRY, "node", "--server", base, "--name", "hollow", "--count", str(NODES),
                 "--capacity", "cpu=32,memory=128Gi,pods=1000"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            deadline = time.monotonic() + 120
            while ready_nodes(base) < NODES:
                if time.monotonic() > deadline:
                    sys.exit(f"{NODES} hollow nodes were not Ready within 120 s")
                time.sleep(0.2)
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: post(f"{base}/api/v1/namespaces/bench/pods", pod(i, rs_uid)), range(PODS)))
            deadline = time.monotonic() + 300
            while (n := running(base)) < PODS:
                if time.monotonic() > deadline:
                    sys.exit(f"only {n} of {PODS} pods Running after 300 s")
                time.sleep(2)
            for loops in SETS:
                controller = subprocess.Popen(
                    [FERRY, "controller", "--server", base, "--controllers", loops,
                     "--identity", f"bench-{len(results)}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                samples = []
                for _ in range(SETTLE_S):
                    time.sleep(1)
                    samples.append(rss_mib(controller.pid))
                results[loops] = {"rss_mib": round(samples[-1], 1),
                                  "anon_mib": round(rss_mib(controller.pid, "RssAnon"), 1),
                                  "peak_mib": round(max(samples), 1)}
                controller.terminate()
                controller.wait(timeout=30)
        finally:
            stop_all(procs)
    print(f'{"ferry controller --controllers":<34}{"RSS MiB":>10}{"own (RssAnon)":>15}{"peak":>8}')
    for loops, r in results.items():
        print(f"{loops:<34}{r['rss_mib']:>10}{r['anon_mib']:>15}{r['peak_mib']:>8}")
    print(f"({PODS} pods on {NODES} hollow nodes; goal for every loop: <= {GOAL_MIB} MiB, i.e. 250 MB)")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"pods": PODS, "nodes": NODES, "result": results, "goal_mib": GOAL_MIB}, f, indent=2)
    print(f"-> {os.path.relpath(RESULTS, ROOT)}")


if __name__ == "__main__":
    main()
