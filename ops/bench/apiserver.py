#!/usr/bin/env python3
"""`just bench apiserver`: the apiserver on SQLite and on PostgreSQL, measured by the load
generator apiserver/examples/apibench.rs (16 concurrent clients, ConfigMaps of about 1.5 KB):
creates/s with p50/p99 (the median of three rounds of 10,000 on a growing store), p99 at a steady 1,000 writes/s, listing 10,000 pods, watch delivery
p99 across 100 watchers, and resident memory once the store holds 100,000 objects.

PostgreSQL runs as a throwaway server (initdb/pg_ctl in a temp dir, fsync on). Prints a table
and writes bench-results/apiserver.json. Exits non-zero when a goal is missed.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from procs import Postgres, rss_mib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# FERRY_BIN / APIBENCH_BIN measure other builds (an older commit, side by side).
FERRY = os.environ.get("FERRY_BIN", os.path.join(ROOT, "target", "release", "ferry"))
BENCH = os.environ.get("APIBENCH_BIN", os.path.join(ROOT, "target", "release", "examples", "apibench"))
RESULTS_NAME = os.environ.get("BENCH_RESULTS", "apiserver.json")
RESULTS = os.path.join(ROOT, "bench-results", RESULTS_NAME)
GOALS = {"sqlite_creates": 10_000, "postgres_creates": 5_000, "steady_p99_ms": 20,
         "list_ms": 150, "watch_p99_ms": 10, "rss_mib_100k": 300}



def measure(engine):
    data_dir = tempfile.mkdtemp(prefix="ferry-bench-")
    pg = Postgres() if engine == "postgres" else None
    args = [FERRY, "apiserver", "--listen", "127.0.0.1:0", "--data-dir", data_dir]
    if pg:
        args += ["--db", pg.url]
    server = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        url = next(w for w in server.stdout.readline().split() if w.startswith("http://"))
        out = subprocess.run([BENCH, url, "--creates", "30000", "--rounds", "3"], check=True, capture_output=True, text=True)
        result = json.loads(out.stdout)
        # 30,000 + 5,000 ConfigMaps, 10,000 pods, 200 Secrets, 10,000 ConfigMaps and 10,000
        # custom resources of the list comparison so far: fill to 100,000 objects.
        fill = subprocess.run([BENCH, url, "--fill", "34800"], check=True, capture_output=True, text=True)
        time.sleep(1)
        result["objects_for_rss"] = 100_000
        result["rss_mib_at_100k_objects"] = round(rss_mib(server.pid), 1)
        result["fill"] = json.loads(fill.stdout)
        return result
    finally:
        server.terminate()
        server.wait(timeout=30)
        if pg:
            pg.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    for path in (FERRY, BENCH):
        if not os.path.exists(path):
            sys.exit("build first: cargo build --release && cargo build --release -p ferry-apiserver --example apibench")
    results = {engine: measure(engine) for engine in ("sqlite", "postgres")}
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"results": results, "goals": GOALS}, f, indent=2)
    rows = [
        ("creates/s, 16 clients", "creates_per_second_16_clients", None),
        ("create p50 ms", "create_latency", "p50_ms"),
        ("create p99 ms", "create_latency", "p99_ms"),
        ("p99 ms at 1,000 writes/s", "create_latency_at_1000_per_second", "p99_ms"),
        ("list 10,000 pods, median ms", "list_10000_pods", "p50_ms"),
        ("watch delivery p99 ms, 100 watchers", "watch_delivery_100_watchers", "p99_ms"),
        ("page 10,000 pods by 500 with a selector, ms", "paged_selector_list_10000_pods_by_500", "p50_ms"),
        ("list 10,000 ConfigMaps, median ms", "list_10000_configmaps", "p50_ms"),
        ("list 10,000 custom resources, median ms", "list_10000_custom_resources", "p50_ms"),
        ("RSS MiB at 100,000 objects", "rss_mib_at_100k_objects", None),
    ]
    print(f"{'':40} {'SQLite':>12} {'PostgreSQL':>12}")
    for label, key, sub in rows:
        cells = []
        for engine in ("sqlite", "postgres"):
            v = results[engine].get(key)
            v = v[sub] if (sub and v is not None) else v
            if v is None:
                cells.append(f"{'-':>12}")  # an older build does not measure it
            else:
                cells.append(f"{v:>12,.1f}" if isinstance(v, float) else f"{v:>12,}")
        print(f"{label:40} {cells[0]} {cells[1]}")
    for engine in ("sqlite", "postgres"):
        rounds = ", ".join(f"{r:,.0f}" for r in results[engine]["create_rounds_per_second"])
        print(f"{engine} creates/s by round (store growing): {rounds}")
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}")
    missed = []
    s, p = results["sqlite"], results["postgres"]
    if s["creates_per_second_16_clients"] < GOALS["sqlite_creates"]:
        missed.append(f"SQLite creates/s {s['creates_per_second_16_clients']:,.0f} < {GOALS['sqlite_creates']:,}")
    if p["creates_per_second_16_clients"] < GOALS["postgres_creates"]:
        missed.append(f"PostgreSQL creates/s {p['creates_per_second_16_clients']:,.0f} < {GOALS['postgres_creates']:,}")
    for engine, r in results.items():
        if r["create_latency_at_1000_per_second"]["p99_ms"] > GOALS["steady_p99_ms"]:
            missed.append(f"{engine}: p99 at 1,000 writes/s over {GOALS['steady_p99_ms']} ms")
        if r["list_10000_pods"]["p50_ms"] > GOALS["list_ms"]:
            missed.append(f"{engine}: list of 10,000 pods over {GOALS['list_ms']} ms")
        if r["watch_delivery_100_watchers"]["p99_ms"] > GOALS["watch_p99_ms"]:
            missed.append(f"{engine}: watch p99 over {GOALS['watch_p99_ms']} ms")
        if "list_10000_custom_resources" in r and r["list_10000_custom_resources"]["p50_ms"] > 1.25 * r["list_10000_configmaps"]["p50_ms"] + 5:
            missed.append(f"{engine}: a list of 10,000 custom resources is slower than one of 10,000 ConfigMaps")
        if r["rss_mib_at_100k_objects"] > GOALS["rss_mib_100k"]:
            missed.append(f"{engine}: RSS over {GOALS['rss_mib_100k']} MiB at 100,000 objects")
    if missed:
        sys.exit("goals missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
