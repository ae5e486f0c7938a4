#!/usr/bin/env python3
"""`just bench validate`: ferry validate's throughput and memory, side by side with Python's
kubernetes-validate in the same run (these machines are shared and noisy, so only ratios taken
together mean much).

Measures, on a generated corpus of Deployments, Services and ConfigMaps (3 per file):
- ferry: resources per second on 30,000 resources (median of several whole-command runs),
  with all cores and with one worker;
- ferry: peak resident memory at 3,000, 30,000 and 90,000 resources (it must not grow);
- kubernetes-validate (pinned, in a venv under target/): resources per second on a slice;
- the ratio of the two throughputs.

Prints a table and writes bench-results/validate.json. Exits non-zero if a goal is missed.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FERRY = os.path.join(ROOT, "target", "release", "ferry")
VENV = os.path.join(ROOT, "target", "bench-venv")
KV = os.path.join(VENV, "bin", "kubernetes-validate")
KV_VERSION = "1.37.0"
CORPUS = os.path.join(ROOT, "target", "bench-corpus")
RESULTS = os.path.join(ROOT, "bench-results", "validate.json")

GOAL_RPS = 50_000
GOAL_RATIO = 200


def timed(cmd):
    """Runs cmd, returns (seconds, peak RSS in MiB, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        sys.exit(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.read().decode()[:2000]}")
    return elapsed, usage.ru_maxrss / 1024, proc.returncode


def corpus(resources):
    path = os.path.join(CORPUS, str(resources))
    if not os.path.isdir(path):
        subprocess.run(
            [sys.executable, os.path.join(ROOT, "ops", "bench", "corpus.py"), path, str(resources)],
            check=True,
        )
    return path


def ensure_kubernetes_validate():
    if not os.path.exists(KV):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run(
            [os.path.join(VENV, "bin", "pip"), "install", "-q", f"kubernetes-validate=={KV_VERSION}"],
            check=True,
        )


def runs(cmd, n):
    samples = [timed(cmd) for _ in range(n)]
    times = [s[0] for s in samples]
    return {
        "min_s": min(times),
        "median_s": statistics.median(times),
        "max_s": max(times),
        "peak_rss_mib": max(s[1] for s in samples),
    }


def main():
    if not os.path.exists(FERRY):
        sys.exit("build first: cargo build --release")
    ensure_kubernetes_validate()
    n = 30_000
    main_corpus = corpus(n)
    slice_resources = 300
    slice_corpus = corpus(slice_resources)

    ferry_all = runs([FERRY, "validate", main_corpus], 7)
    ferry_one = runs([FERRY, "validate", "-n", "1", main_corpus], 3)
    ferry_slice = runs([FERRY, "validate", slice_corpus], 5)
    kv_files = sorted(os.path.join(slice_corpus, f) for f in os.listdir(slice_corpus))
    kv_slice = runs([KV, "-k", "1.33.0", "--quiet", *kv_files], 3)

    memory = {}
    for size in (3_000, 30_000, 90_000):
        memory[str(size)] = runs([FERRY, "validate", corpus(size)], 1)["peak_rss_mib"]

    ferry_rps = n / ferry_all["median_s"]
    kv_rps = slice_resources / kv_slice["median_s"]
    result = {
        "corpus_resources": n,
        "ferry": {
            "resources_per_second": round(ferry_rps),
            "single_worker_resources_per_second": round(n / ferry_one["median_s"]),
            "runs": ferry_all,
            "slice_resources_per_second": round(slice_resources / ferry_slice["median_s"]),
            "peak_rss_mib_by_corpus_size": memory,
        },
        "kubernetes_validate": {
            "version": KV_VERSION,
            "slice_resources": slice_resources,
            "resources_per_second": round(kv_rps, 1),
            "runs": kv_slice,
        },
        "throughput_ratio": round(ferry_rps / kv_rps),
        "same_slice_ratio": round((slice_resources / ferry_slice["median_s"]) / kv_rps),
        "goals": {"resources_per_second": GOAL_RPS, "ratio": GOAL_RATIO},
    }
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(result, f, indent=2)

    print(f"ferry validate, {n} resources in {n // 3} files (median of 7 runs)")
    print(f"  all cores      {ferry_rps:>10,.0f} resources/s   ({ferry_all['median_s']:.3f} s)")
    print(f"  one worker     {n / ferry_one['median_s']:>10,.0f} resources/s")
    print(f"kubernetes-validate {KV_VERSION}, {slice_resources} resources (median of 3 runs)")
    print(f"                 {kv_rps:>10,.1f} resources/s   ({kv_slice['median_s']:.3f} s)")
    print(f"ratio            {ferry_rps / kv_rps:>10,.0f}x   (same {slice_resources}-resource slice: {result['same_slice_ratio']}x)")
    print("ferry peak RSS   " + ", ".join(f"{k} resources: {v:.1f} MiB" for k, v in memory.items()))
    print(f"wrote {os.path.relpath(RESULTS, ROOT)}")
    missed = []
    if ferry_rps < GOAL_RPS:
        missed.append(f"throughput {ferry_rps:,.0f}/s < {GOAL_RPS:,}/s")
    if ferry_rps / kv_rps < GOAL_RATIO:
        missed.append(f"ratio {ferry_rps / kv_rps:,.0f}x < {GOAL_RATIO}x")
    if memory["90000"] > 2 * memory["3000"] + 16:
        missed.append("memory grows with the corpus")
    if missed:
        sys.exit("goals missed: " + "; ".join(missed))


if __name__ == "__main__":
    main()
