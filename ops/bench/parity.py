#!/usr/bin/env python3
"""Verdict parity between ferry and Python's kubernetes-validate on fixtures/parity/.

Every case's file name says the expected verdict (see fixtures/parity/README.md). Both tools
run on every case; the script fails when they disagree where both check the same thing, or
when a `ferry-only-` case turns out to be checked by kubernetes-validate too (then it is no
longer ferry-only and must be renamed). Prints a table; writes bench-results/parity.json.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fixtures", "parity")
VENV = os.path.join(ROOT, "target", "bench-venv")
KV = os.path.join(VENV, "bin", "kubernetes-validate")
KV_VERSION = "1.37.0"

# Cases kubernetes-validate cannot check at all, and why (they count as neither agreement nor
# disagreement).
KV_UNSUPPORTED = {"valid-list.yaml": "kubernetes-validate does not expand kind: List"}


def ferry_binary():
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "ferry")
        if os.path.exists(path):
            return path
    sys.exit("build ferry first (cargo build)")


def ferry_verdict(ferry, path, strict):
    cmd = [ferry, "validate", "-o", "json"] + (["--strict"] if strict else []) + [path]
    out = subprocess.run(cmd, capture_output=True, text=True)
    statuses = [r["status"] for r in json.loads(out.stdout)["resources"]]
    if "error" in statuses:
        return "error"
    return "invalid" if "invalid" in statuses else "valid"


def kv_verdict(path, strict):
    cmd = [KV, "-k", "1.33.0"] + (["--strict"] if strict else []) + [path]
    out = subprocess.run(cmd, capture_output=True, text=True)
    text = out.stdout + out.stderr
    if "Couldn't find schema" in text:
        return "unchecked"
    if "Couldn't parse" in text or "could not be validated" in text:
        return "error"
    if "did not validate" in text:
        return "invalid"
    if "passed" in text:
        return "valid"
    return "error"


def main():
    if not os.path.exists(KV):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([os.path.join(VENV, "bin", "pip"), "install", "-q",
                        f"kubernetes-validate=={KV_VERSION}"], check=True)
    ferry = ferry_binary()
    rows, failures = [], []
    for name in sorted(os.listdir(CORPUS)):
        if not name.endswith((".yaml", ".json")):
            continue
        path = os.path.join(CORPUS, name)
        strict = "-strict-" in name
        ferry_only = name.startswith("ferry-only-")
        expected = name.split("-")[0] if not ferry_only else "invalid"
        f, k = ferry_verdict(ferry, path, strict), kv_verdict(path, strict)
        want_kv = "valid" if ferry_only else expected
        if name in KV_UNSUPPORTED:
            want_kv = "unchecked"
        ok = f == expected and k == want_kv
        rows.append({"case": name, "expected": expected, "ferry": f, "kubernetes_validate": k,
                     "ferry_only": ferry_only or name in KV_UNSUPPORTED, "agree": ok})
        if not ok:
            failures.append(f"{name}: expected {expected}, ferry {f}, kubernetes-validate {k}")
    both = [r for r in rows if not r["ferry_only"]]
    agree = sum(r["ferry"] == r["kubernetes_validate"] for r in both)
    for r in rows:
        mark = "ok " if r["agree"] else "BAD"
        note = " (ferry-only)" if r["ferry_only"] else ""
        if r["case"] in KV_UNSUPPORTED:
            note = f" ({KV_UNSUPPORTED[r['case']]})"
        print(f"{mark} {r['case']:<42} ferry={r['ferry']:<8} kubernetes-validate={r['kubernetes_validate']}{note}")
    print(f"agreement where both check: {agree}/{len(both)}; ferry-only checks: {len(rows) - len(both)}")
    os.makedirs(os.path.join(ROOT, "bench-results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench-results", "parity.json"), "w") as out:
        json.dump({"cases": rows, "agree": agree, "both_check": len(both)}, out, indent=2)
    if failures:
        sys.exit("parity failures:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
