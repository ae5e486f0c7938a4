#!/usr/bin/env python3
"""`just bench gitops`: `ferry up` (release build, SQLite) following a local Git repository of
3,000 objects (one Namespace, ConfigMaps, Secrets, Deployments and Services, one object per
file).

Measures:
- `ferry up` runs with 32 hollow nodes (NODES), so the 600 Deployments roll out; the commit
  rounds start once the first Revision is Healthy (reported as its own figure).
- initial sync: from starting `ferry up` on the repository until its first Revision is
  Applied (the objects visible through the API), and the engine's time for it before the
  transaction is sent (a Revision's `started` to `finished`: loading, validating, planning);
- commit-to-applied latency: a commit changing 100 objects is made with `git commit`; the clock
  stops when a changed object carries the new commit through the API (the commit is applied as
  one transaction, so one object shows all). Repeated ROUNDS times: p50, p90, max;
- resident memory of the process at the end, and the allocator's account of it from /metrics
  (allocated: what the program holds; active: the pages holding it; resident).

ENGINE_ONLY=1 runs the engine and the apiserver alone (no nodes, no controller loops), as
`ferry up` was when issue #9 set its memory goal.

Prints a table and writes bench-results/gitops.json. Exits non-zero when a goal is missed.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from procs import free_port, rss_mib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# FERRY_BIN measures another build (an older commit, side by side).
FERRY = os.environ.get("FERRY_BIN", os.path.join(ROOT, "target", "release", "ferry"))
RESULTS = os.path.join(ROOT, "bench-results", os.environ.get("BENCH_RESULTS", "gitops.json"))
OBJECTS = 3000
CHANGED = 100
ROUNDS = int(os.environ.get("ROUNDS", "20"))
# Enough hollow nodes (4 cpu each) for the 1,200 pods of 100m.
NODES = int(os.environ.get("NODES", "32"))
# ENGINE_ONLY=1: the GitOps engine and the apiserver alone, as `ferry up` was when issue #9 set
# its memory goal: no nodes and no controller loops (`--controllers=-scheduler` names only a
# loop taken out, so none runs, as with kube-controller-manager), so nothing rolls out and the
# rounds start once the first commit is applied.
ENGINE_ONLY = os.environ.get("ENGINE_ONLY", "") == "1"
# A shell command run once the appliance has settled, `{pid}` standing for its process id.
AT_SETTLE = os.environ.get("AT_SETTLE", "")
SETTLE_S = 20
GOALS = {"initial_sync_s": 3.0, "commit_to_applied_p50_ms": 100}

GIT_ENV = dict(os.environ, GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.org",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.org")



def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, env=GIT_ENV, check=True,
                          capture_output=True, text=True).stdout.strip()


def configmap(i, version):
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-{i:04d}\n"
            f"  namespace: bench\n  labels:\n    app: app-{i % 50}\ndata:\n"
            f"  version: \"{version}\"\n  settings.yaml: |\n    replicas: 3\n    tier: web\n"
            f"    owner: team-{i % 7}\n")


def deployment(i):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i:04d}\n"
            f"  namespace: bench\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n"
            f"      app: app-{i:04d}\n  template:\n    metadata:\n      labels:\n"
            f"        app: app-{i:04d}\n    spec:\n      containers:\n      - name: main\n"
            f"        image: registry.local/app:{i % 13}\n        ports:\n        - containerPort: 8080\n"
            f"        resources:\n          requests:\n            cpu: 100m\n            memory: 64Mi\n")


def secret(i):
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i:04d}\n  namespace: bench\n"
            f"type: Opaque\nstringData:\n  token: t-{i}\n")


def service(i):
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-{i:04d}\n  namespace: bench\n"
            f"spec:\n  selector:\n    app: app-{i:04d}\n  ports:\n  - port: 80\n    targetPort: 8080\n")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def revisions(base):
    try:
        items = get(f"{base}/apis/ferry.dev/v1/namespaces/ferry-system/revisions")["items"]
    except Exception:
        return []
    return sorted(items, key=lambda r: r["metadata"]["name"])


def last_status(base):
    """The newest Revision's status, or {} while the list cannot be read (a slow or
    profiled appliance may time a request out)."""
    revs = revisions(base)
    return revs[-1].get("status", {}) if revs else {}


def heap_mib(base):
    """The allocator's figures from /metrics (MiB): allocated, active, resident."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as r:
        text = r.read().decode()
    figures = {}
    for line in text.splitlines():
        for name in ("allocated", "active", "resident"):
            if line.startswith(f"ferry_heap_{name}_bytes "):
                figures[name] = round(int(line.split()[1]) / 2**20, 1)
    return figures


def seconds(ts):
    # 2026-11-24T21:13:58.761197Z
    from datetime import datetime
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()



def main():
    if not os.path.exists(FERRY):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="ferry-bench-gitops-")
    repo = os.path.join(work, "repo")
    os.makedirs(repo)
    git(repo, "init", "-q", "-b", "main")
    write(os.path.join(repo, "namespace.yaml"),
          "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench\n")
    counts = {"configmaps": 1500, "secrets": 500, "deployments": 600, "services": 399}
    assert 1 + sum(counts.values()) == OBJECTS
    for i in range(counts["configmaps"]):
        write(os.path.join(repo, "config", f"config-{i:04d}.yaml"), configmap(i, 0))
    for i in range(counts["secrets"]):
        write(os.path.join(repo, "secrets", f"secret-{i:04d}.yaml"), secret(i))
    for i in range(counts["deployments"]):
        write(os.path.join(repo, "apps", f"app-{i:04d}.yaml"), deployment(i))
    for i in range(counts["services"]):
        write(os.path.join(repo, "services", f"svc-{i:04d}.yaml"), service(i))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "3,000 objects")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    cluster = (["--nodes", "0", "--controllers=-scheduler"] if ENGINE_ONLY
               else ["--nodes", str(NODES), "--node-name", "sim", "--runtime", "sim"])
    proc = subprocess.Popen([FERRY, "up", "--source", repo, "--name", "bench",
                             "--data-dir", os.path.join(work, "data"), "--listen", f"127.0.0.1:{port}",
                             "--drift-interval", "1h", *cluster],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc.stdout.readline()
    try:
        while True:
            revs = revisions(base)
            if revs and revs[-1].get("status", {}).get("result") == "Applied":
                break
            if revs and revs[-1].get("status", {}).get("result") in ("Rejected", "Failed"):
                sys.exit(f"initial sync refused: {json.dumps(revs[-1]['status'].get('errors'))[:2000]}")
            if time.monotonic() - started > 120:
                sys.exit("no initial sync within 120 s")
            time.sleep(0.01)
        initial = time.monotonic() - started
        # The workload controllers roll the 600 Deployments out (1,200 pods on the hollow
        # nodes); the commit rounds start once the Revision is Healthy, on a settled cluster.
        while not ENGINE_ONLY and last_status(base).get("health") != "Healthy":
            if time.monotonic() - started > 600:
                sys.exit("the initial commit was not Healthy within 600 s")
            time.sleep(0.1)
        healthy = time.monotonic() - started
        first = revs[-1]["status"]
        engine_initial = seconds(first["finished"]) - seconds(first["started"])
        count = len(get(f"{base}/api/v1/namespaces/bench/configmaps")["items"])
        assert count == counts["configmaps"], count

        latencies, engine = [], []
        for round_ in range(1, ROUNDS + 1):
            for j in range(CHANGED):
                i = (round_ * CHANGED + j) % counts["configmaps"]
                write(os.path.join(repo, "config", f"config-{i:04d}.yaml"), configmap(i, round_))
            probe = (round_ * CHANGED) % counts["configmaps"]
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", f"round {round_}")
            t0 = time.monotonic()
            sha = git(repo, "rev-parse", "HEAD")
            url = f"{base}/api/v1/namespaces/bench/configmaps/config-{probe:04d}"
            while True:
                cm = get(url)
                if cm["metadata"].get("annotations", {}).get("ferry.dev/commit") == sha:
                    break
                if time.monotonic() - t0 > 30:
                    sys.exit(f"round {round_}: not applied within 30 s")
                time.sleep(0.002)
            latencies.append((time.monotonic() - t0) * 1000)
            rev = last_status(base)
            assert rev.get("result") == "Applied" and len(rev.get("changes", [])) == CHANGED, rev.get("result")
            engine.append((seconds(rev["finished"]) - seconds(rev["started"])) * 1000)
        memory = rss_mib(proc.pid)
        heap = heap_mib(base)
        # What `ps` shows once the appliance is idle: jemalloc's background thread gives
        # unused pages back within its 10 s decay.
        time.sleep(SETTLE_S)
        settled = rss_mib(proc.pid)
        settled_heap = heap_mib(base)
        if AT_SETTLE:
            # A profiler's look at the settled appliance (e.g. `kill -9 {pid}` ending a heaptrack
            # run there), before it is stopped; a failure is reported, not fatal.
            done = subprocess.run(AT_SETTLE.replace("{pid}", str(proc.pid)), shell=True, check=False)
            if done.returncode != 0:
                print(f"AT_SETTLE exited with {done.returncode}", file=sys.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)

    latencies.sort()
    result = {
        "objects": OBJECTS,
        "changed_per_commit": CHANGED,
        "rounds": ROUNDS,
        "initial_sync_s": round(initial, 3),
        "initial_sync_engine_s": round(engine_initial, 3),
        "engine_only": ENGINE_ONLY,
        "initial_healthy_s": None if ENGINE_ONLY else round(healthy, 3),
        "commit_to_applied_p50_ms": round(statistics.median(latencies), 1),
        "commit_to_applied_p90_ms": round(latencies[int(len(latencies) * 0.9) - 1], 1),
        "commit_to_applied_max_ms": round(latencies[-1], 1),
        "engine_apply_p50_ms": round(statistics.median(engine), 1),
        "rss_mib": round(memory, 1),
        # The allocator's account at the same moment: what the program holds (allocated)
        # against what the allocator has resident; the difference is its slack.
        "heap_allocated_mib": heap.get("allocated"),
        "heap_active_mib": heap.get("active"),
        "heap_resident_mib": heap.get("resident"),
        "rss_settled_mib": round(settled, 1),
        "heap_settled_allocated_mib": settled_heap.get("allocated"),
        "heap_settled_active_mib": settled_heap.get("active"),
        "goals": GOALS,
    }
    print(f"{'measure':<44}{'ferry':>12}{'goal':>10}")
    print(f"{'initial sync of 3,000 objects (s)':<44}{result['initial_sync_s']:>12}{'< 3':>10}")
    if not ENGINE_ONLY:
        print(f"{'  -> Healthy, 1,200 pods rolled out (s)':<44}{result['initial_healthy_s']:>12}")
    print(f"{'  of which load, validate, plan (s)':<44}{result['initial_sync_engine_s']:>12}")
    print(f"{'commit → applied, 100 objects, p50 (ms)':<44}{result['commit_to_applied_p50_ms']:>12}{'< 100':>10}")
    print(f"{'  p90 (ms)':<44}{result['commit_to_applied_p90_ms']:>12}")
    print(f"{'  max (ms)':<44}{result['commit_to_applied_max_ms']:>12}")
    print(f"{'  load, validate, plan p50 (ms)':<44}{result['engine_apply_p50_ms']:>12}")
    print(f"{'resident memory (MiB)':<44}{result['rss_mib']:>12}")
    print(f"{'  heap allocated / active / resident (MiB)':<44}"
          f"{result['heap_allocated_mib']} / {result['heap_active_mib']} / {result['heap_resident_mib']}")
    print(f"{f'resident memory {SETTLE_S} s later (MiB)':<44}{result['rss_settled_mib']:>12}")
    print(f"{'  heap allocated / active (MiB)':<44}"
          f"{result['heap_settled_allocated_mib']} / {result['heap_settled_active_mib']}")
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)
    missed = [k for k, goal in GOALS.items() if result[k] >= goal]
    if missed:
        print(f"goals missed: {', '.join(missed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
