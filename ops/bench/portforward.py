"""`just bench portforward`: `kubectl port-forward` through ferry, beside the direct path.

`ferry up --runtime process` (release build, SQLite, empty source) runs one pod serving files
with `python3 -m http.server` (a 64 MiB file and a 1 KiB one). The same requests go three ways:
straight to the pod's IP (the peer: no forwarding at all), through `kubectl port-forward` as
kubectl 1.31+ speaks it (SPDY tunnelled through a WebSocket: kubectl -> apiserver -> node
agent -> the pod's network namespace), and through its plain SPDY fallback. Reports the
throughput of the 64 MiB download (median of 3) and the latency of a fresh connection's
small request (connect, GET, whole answer; p50/p99 of 50, one after another). As root the pod
has its own network namespace; otherwise it shares the host's. Numbers to stdout and
bench-results/portforward.json.
"""
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from procs import free_port, get, post, ready_nodes  # noqa: E402

FERRY = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "ferry")
BLOB_MIB = 64
SMALL = 50


def fetch(port, path, host="127.0.0.1"):
    """Bytes of the body of GET path, over a fresh connection."""
    with socket.create_connection((host, port), timeout=30) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: pod\r\n\r\n".encode())
        chunks = []
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    answer = b"".join(chunks)
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200"):
        raise RuntimeError(f"not a 200: {head[:80]!r}")
    return len(body)


def measure(port, host, tag):
    sizes, rates = [], []
    for _ in range(3):
        t0 = time.monotonic()
        sizes.append(fetch(port, "/blob", host))
        rates.append(BLOB_MIB / (time.monotonic() - t0))
    if any(s != BLOB_MIB << 20 for s in sizes):
        sys.exit(f"{tag}: the download came back short: {sizes}")
    latencies = []
    for _ in range(SMALL):
        t0 = time.monotonic()
        fetch(port, "/small", host)
        latencies.append((time.monotonic() - t0) * 1000)
    latencies.sort()
    return {
        f"{tag}_mib_s": round(statistics.median(rates), 1),
        f"{tag}_small_p50_ms": round(statistics.median(latencies), 2),
        f"{tag}_small_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
    }


def forward(kubeconfig, local, env):
    process = subprocess.Popen(["kubectl", "port-forward", "pod/srv", f"{local}:8080"],
                               env={**os.environ, "KUBECONFIG": kubeconfig, **env},
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.stdout.readline()
    if "Forwarding from" not in line:
        sys.exit(f"kubectl port-forward did not start: {line!r}")
    return process


def main():
    result = {"blob_mib": BLOB_MIB, "small_requests": SMALL, "root": os.geteuid() == 0}
    with tempfile.TemporaryDirectory(prefix="ferry-bench-pf-") as work:
        os.makedirs(os.path.join(work, "src"))
        port = free_port()
        up = subprocess.Popen([FERRY, "up", "--source", os.path.join(work, "src"), "--allow-empty",
                               "--data-dir", os.path.join(work, "data"),
                               "--listen", f"127.0.0.1:{port}", "--runtime", "process",
                               "--node-name", "bench", "--pod-cidr", "10.213.0.0/24"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        up.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        kubeconfig = os.path.join(work, "kubeconfig")
        with open(kubeconfig, "w") as f:
            f.write(subprocess.run([FERRY, "kubeconfig", "--server", base], check=True,
                                   capture_output=True, text=True).stdout)
        forwards = []
        try:
            while ready_nodes(base) < 1:
                time.sleep(0.1)
            www = os.path.join(work, "www")
            served = (f"mkdir -p {www}; head -c {BLOB_MIB << 20} /dev/zero > {www}/blob; "
                      f"head -c 1024 /dev/zero > {www}/small; "
                      f"exec python3 -m http.server --directory {www} 8080")
            post(f"{base}/api/v1/namespaces/default/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "srv"},
                "spec": {"containers": [{"name": "http", "image": "python",
                                         "command": ["sh", "-c", served]}]}})
            deadline = time.monotonic() + 60
            ip = None
            while time.monotonic() < deadline:
                status = get(f"{base}/api/v1/namespaces/default/pods/srv").get("status", {})
                ip = status.get("podIP")
                if status.get("phase") == "Running" and ip:
                    try:
                        fetch(8080, "/small", ip)
                        break
                    except OSError:
                        pass
                time.sleep(0.1)
            else:
                sys.exit("the pod did not serve within 60 s")
            result.update(measure(8080, ip, "direct"))
            for tag, env in [("tunnel", {}), ("spdy", {"KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"})]:
                local = free_port()
                forwards.append(forward(kubeconfig, local, env))
                result.update(measure(local, "127.0.0.1", tag))
        finally:
            for process in forwards:
                process.terminate()
                process.wait(timeout=30)
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                up.kill()

    rows = [
        ("64 MiB download, direct to the pod (MiB/s)", result["direct_mib_s"]),
        ("64 MiB download, port-forward through a WebSocket (MiB/s)", result["tunnel_mib_s"]),
        ("64 MiB download, port-forward over SPDY (MiB/s)", result["spdy_mib_s"]),
        ("fresh connection + 1 KiB GET, direct, p50 / p99 (ms)",
         f"{result['direct_small_p50_ms']} / {result['direct_small_p99_ms']}"),
        ("fresh connection + 1 KiB GET, WebSocket tunnel, p50 / p99 (ms)",
         f"{result['tunnel_small_p50_ms']} / {result['tunnel_small_p99_ms']}"),
        ("fresh connection + 1 KiB GET, SPDY, p50 / p99 (ms)",
         f"{result['spdy_small_p50_ms']} / {result['spdy_small_p99_ms']}"),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    out = os.path.join(os.path.dirname(__file__), "..", "..", "bench-results", "portforward.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
