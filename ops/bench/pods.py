"""`just bench pods`: pods running for real on the `process` and `cri` runtimes.

`ferry up --runtime process` (release build, SQLite, empty source) with its one node; 100 pods
(`sleep 3600`, one container each) are created one after another through the API while a
watch records, per pod, when it was ADDED and when it was first seen Running. Reports pod
startup latency p50/p99 (created -> Running on the watch), the time from the first create to
the last pod Running, and the appliance's resident memory idle and with 100 pods running (the
node agent runs inside `ferry up`, beside the apiserver and the controllers). A second run
measures the node agent alone: `ferry up --nodes 0` serves the API and the controllers, and a
separate `ferry node --runtime process` runs the pods; its resident memory idle and with 100
pods running is the kubelet-comparable figure. As root, each pod gets its own network namespace
through CNI (the figures include it); otherwise pods share the host's network. A third run
(as root, with containerd, runc and umoci installed) does the same with `ferry up --runtime
cri` against a containerd of its own (ops/cri/), the pods running the local busybox image.
As root, the peer of the `process` runtime's networks is timed first: the CNI plugins alone
giving 100 network namespaces their networks at once. Numbers to stdout and bench-results/pods.json.
"""
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from procs import free_port, get, post, ready_nodes, rss_mib  # noqa: E402

# FERRY_BIN measures another build (an older commit, side by side).
FERRY = os.environ.get("FERRY_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "ferry"))
PODS = int(os.environ.get("PODS", "100"))
# Pods created one at a time after the burst, within the node's limit of 110 pods.
PACED = max(0, min(20, 110 - PODS))
GOALS = {"startup_p99_ms": 300, "all_running_s": 5, "idle_rss_mib": 20, "busy_rss_mib": 60,
         "cri_startup_p99_ms": 600}
OPS = os.path.join(os.path.dirname(__file__), "..", "cri")
CRI_RAW = os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "examples", "cri_raw")


class PodWatch(threading.Thread):
    """Records when each pod was ADDED and first Running."""

    def __init__(self, base):
        super().__init__(daemon=True)
        self.base, self.added, self.bound, self.running = base, {}, {}, {}

    def run(self):
        with urllib.request.urlopen(f"{self.base}/api/v1/namespaces/default/pods?watch=true",
                                    timeout=600) as stream:
            for line in stream:
                event = json.loads(line)
                pod = event["object"]
                name, now = pod["metadata"]["name"], time.monotonic()
                if event["type"] == "ADDED":
                    self.added.setdefault(name, now)
                if pod.get("spec", {}).get("nodeName"):
                    self.bound.setdefault(name, now)
                if pod.get("status", {}).get("phase") == "Running":
                    self.running.setdefault(name, now)


def pod(i, image):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
            "spec": {"containers": [{"name": "c", "image": image,
                                     "command": ["sleep", "3600"]}]}}


def measure(work, port, up, agent_pid, tag, image="busybox"):
    """Creates the pods and measures; `agent_pid` is the process whose memory is reported."""
    base = f"http://127.0.0.1:{port}"
    while ready_nodes(base) < 1:
        time.sleep(0.1)
    time.sleep(3)
    idle = rss_mib(agent_pid)
    idle_anon = rss_mib(agent_pid, "RssAnon")
    watch = PodWatch(base)
    watch.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    for i in range(PODS):
        post(f"{base}/api/v1/namespaces/default/pods", pod(i, image))
    created = time.monotonic() - t0
    mine = {f"p{i}" for i in range(PODS)}

    def running():
        return {n: t for n, t in watch.running.items() if n in mine}
    deadline = time.monotonic() + 120
    while len(running()) < PODS and time.monotonic() < deadline:
        time.sleep(0.05)
    all_running = max(running().values()) - t0 if len(running()) == PODS else None
    time.sleep(2)
    busy = rss_mib(agent_pid)
    busy_anon = rss_mib(agent_pid, "RssAnon")
    latencies = sorted((watch.running[n] - watch.added[n]) * 1000
                       for n in running() if n in watch.added)
    binding = sorted((watch.bound[n] - watch.added[n]) * 1000
                     for n in watch.bound if n in watch.added)
    listed = get(f"{base}/api/v1/namespaces/default/pods")["items"]
    return {
        f"{tag}running": len(running()),
        f"{tag}startup_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        f"{tag}startup_p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 1) if latencies else None,
        f"{tag}all_running_s": round(all_running, 2) if all_running is not None else None,
        f"{tag}all_created_s": round(created, 2),
        f"{tag}scheduled_p50_ms": round(statistics.median(binding), 1) if binding else None,
        f"{tag}scheduled_p99_ms": round(binding[max(0, int(len(binding) * 0.99) - 1)], 1) if binding else None,
        f"{tag}idle_rss_mib": round(idle, 1),
        f"{tag}busy_rss_mib": round(busy, 1),
        f"{tag}idle_anon_mib": round(idle_anon, 1),
        f"{tag}busy_anon_mib": round(busy_anon, 1),
        f"{tag}pod_ips": len({p.get("status", {}).get("podIP") for p in listed}),
    }


def paced(port, tag, image, count=20):
    """Pods created one at a time, each once the one before runs: startup latency without a
    queue (what one pod costs the node and its runtime)."""
    base = f"http://127.0.0.1:{port}"
    while ready_nodes(base) < 1:
        time.sleep(0.1)
    watch = PodWatch(base)
    watch.start()
    time.sleep(0.5)
    latencies = []
    for i in range(count):
        name = f"one{i}"
        body = pod(i, image)
        body["metadata"]["name"] = name
        post(f"{base}/api/v1/namespaces/default/pods", body)
        deadline = time.monotonic() + 60
        while name not in watch.running and time.monotonic() < deadline:
            time.sleep(0.005)
        if name in watch.running and name in watch.added:
            latencies.append((watch.running[name] - watch.added[name]) * 1000)
    latencies.sort()
    return {
        f"{tag}one_at_a_time_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        f"{tag}one_at_a_time_max_ms": round(latencies[-1], 1) if latencies else None,
    }


def stop(process):
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def appliance(work, port, extra):
    os.makedirs(os.path.join(work, "src"), exist_ok=True)
    up = subprocess.Popen([FERRY, "up", "--source", os.path.join(work, "src"), "--allow-empty",
                           "--data-dir", os.path.join(work, "data"), "--listen", f"127.0.0.1:{port}",
                           *extra],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    up.stdout.readline()
    return up


def containerd_present():
    tools = ["containerd", "runc", "ctr", "umoci", "busybox"]
    return os.geteuid() == 0 and all(subprocess.run(["sh", "-c", f"command -v {t}"],
                                                    capture_output=True).returncode == 0
                                     for t in tools)


def ctr(socket, *args):
    return subprocess.run(["ctr", "--address", socket, "-n", "k8s.io", *args],
                          capture_output=True, text=True)


def cri_run(result):
    """The pods on containerd through the cri runtime; containerd and its pods cleaned up."""
    images = os.path.join(tempfile.gettempdir(), "ferry-cri-images")
    subprocess.run([os.path.join(OPS, "images.sh"), images], check=True)
    with tempfile.TemporaryDirectory(prefix="ferry-bench-cri-") as work:
        socket = os.path.join(work, "ctd", "containerd.sock")
        bridge = f"fb{os.getpid() % 100000}"
        containerd = subprocess.Popen([os.path.join(OPS, "containerd.sh"), os.path.join(work, "ctd")],
                                      env={**os.environ, "FERRY_CRI_BRIDGE": bridge},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while ctr(socket, "version").returncode != 0:
                if time.monotonic() > deadline:
                    sys.exit("containerd did not answer within 30 s")
                time.sleep(0.1)
            for name in ["busybox", "pause"]:
                ctr(socket, "images", "import", "--base-name", f"ferry.local/{name}",
                    os.path.join(images, f"{name}.tar"))
            port = free_port()
            up = appliance(work, port, ["--runtime", "cri", "--cri-socket", socket,
                                        "--node-name", "bench", "--pod-cidr", "10.212.0.0/24"])
            try:
                # One at a time first (the node's pod limit is 110), then the burst.
                result.update(paced(port, "cri_", "ferry.local/busybox:1", count=10))
                result.update(measure(work, port, up, up.pid, "cri_", "ferry.local/busybox:1"))
                # Every pod goes (grace 0), and the agent removes its sandboxes through CRI.
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/v1/namespaces/default/pods?gracePeriodSeconds=0",
                    method="DELETE")
                urllib.request.urlopen(req, timeout=60).read()
                deadline = time.monotonic() + 120
                # A sandbox is removed (its network released) only after its containers.
                while len(ctr(socket, "containers", "ls", "-q").stdout.split()) > 0:
                    if time.monotonic() > deadline:
                        print("warning: containers left after 120 s", file=sys.stderr)
                        break
                    time.sleep(0.2)
            finally:
                stop(up)
            # The peer: containerd driven straight over CRI, the same pods, the same machine.
            if os.path.exists(CRI_RAW):
                raw = subprocess.run([CRI_RAW, socket, "10", str(PODS)], capture_output=True,
                                     text=True, timeout=600)
                if raw.returncode == 0:
                    peer = json.loads(raw.stdout)
                    result["raw_containerd"] = peer
                else:
                    print(f"warning: cri_raw failed: {raw.stderr}", file=sys.stderr)
        finally:
            stop(containerd)
            subprocess.run(["pkill", "-9", "-f", f"address {socket}"])
            subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL)
            with open("/proc/self/mounts") as f:
                mounts = [line.split()[1] for line in f if line.split()[1].startswith(work)]
            for m in sorted(mounts, key=len, reverse=True):
                subprocess.run(["umount", "-l", m])


def cni_alone(result):
    """The peer of the `process` runtime's pod networks: what the CNI plugins alone take to
    give PODS pods their networks at once (`ip netns add`, loopback up, the `bridge` plugin
    with `host-local` addresses, all started in parallel, as the node agent starts them), and
    the CPU seconds that costs. Every pod the agent starts pays this before its container runs."""
    ip = next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip") if os.path.exists(p)), None)
    if not (ip and os.path.exists("/usr/lib/cni/bridge") and os.geteuid() == 0):
        return
    with tempfile.TemporaryDirectory(prefix="ferry-bench-cni-") as work:
        conf = json.dumps({"cniVersion": "1.0.0", "name": "benchcni", "type": "bridge",
                           "bridge": "ferrybenchcni", "isGateway": True, "ipMasq": False,
                           "ipam": {"type": "host-local", "subnet": "10.212.0.0/24",
                                    "dataDir": os.path.join(work, "ipam")}})
        names = [f"ferrybenchcni{i}" for i in range(PODS)]

        def plugin(command, name, **kw):
            env = {"CNI_COMMAND": command, "CNI_CONTAINERID": name,
                   "CNI_NETNS": f"/run/netns/{name}", "CNI_IFNAME": "eth0",
                   "CNI_PATH": "/usr/lib/cni", "PATH": os.environ.get("PATH", "")}
            subprocess.run(["/usr/lib/cni/bridge"], input=conf, env=env, text=True,
                           stdout=subprocess.DEVNULL, **kw)

        def attach(name):
            subprocess.run([ip, "netns", "add", name], check=True)
            subprocess.run([ip, "-n", name, "link", "set", "lo", "up"], check=True)
            plugin("ADD", name, check=True)

        def detach(name):
            plugin("DEL", name, stderr=subprocess.DEVNULL)
            subprocess.run([ip, "netns", "del", name], stderr=subprocess.DEVNULL)

        def each(step):
            threads = [threading.Thread(target=step, args=(n,)) for n in names]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        before = os.times()
        t0 = time.monotonic()
        each(attach)
        took = time.monotonic() - t0
        after = os.times()
        each(detach)
        subprocess.run([ip, "link", "del", "ferrybenchcni"], stderr=subprocess.DEVNULL)
        result["cni_alone_all_s"] = round(took, 2)
        result["cni_alone_cpu_s"] = round(after.children_user - before.children_user
                                          + after.children_system - before.children_system, 2)


def main():
    if not os.path.exists(FERRY):
        sys.exit(f"build first: {FERRY} is missing (just bench pods builds it)")
    root = os.geteuid() == 0 and os.path.exists("/usr/lib/cni/bridge")
    result = {"pods": PODS, "own_network_namespaces": root}
    runtimes = os.environ.get("RUNTIMES", "process,cri").split(",")
    if "cri" in runtimes and containerd_present():
        cri_run(result)
    if "process" not in runtimes:
        print(json.dumps(result, indent=2))
        os.makedirs("bench-results", exist_ok=True)
        with open(os.path.join("bench-results", os.environ.get("BENCH_RESULTS", "pods-cri.json")), "w") as f:
            json.dump(result, f, indent=2)
        return
    cni_alone(result)
    # The node agent inside the appliance.
    with tempfile.TemporaryDirectory(prefix="ferry-bench-pods-") as work:
        port = free_port()
        up = appliance(work, port, ["--runtime", "process", "--node-name", "bench",
                                    "--pod-cidr", "10.210.0.0/24"])
        try:
            result.update(measure(work, port, up, up.pid, ""))
        finally:
            stop(up)
    # The node agent alone, beside an appliance that runs none.
    with tempfile.TemporaryDirectory(prefix="ferry-bench-agent-") as work:
        port = free_port()
        up = appliance(work, port, ["--nodes", "0"])
        agent = subprocess.Popen([FERRY, "node", "--server", f"http://127.0.0.1:{port}",
                                  "--name", "agent", "--runtime", "process",
                                  "--root-dir", os.path.join(work, "node"),
                                  "--pod-cidr", "10.211.0.0/24",
                                  "--endpoint-listen", "127.0.0.1:0"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            result.update(measure(work, port, up, agent.pid, "agent_"))
            # The same node, its 100 pods running, then more one at a time (up to the node's
            # 110-pod limit; a pod past it would wait unschedulable): startup without
            # a queue (what one pod costs the agent, its runtime and the CNI plugins).
            result.update(paced(port, "agent_", "busybox", count=PACED))
        finally:
            stop(agent)
            stop(up)
    rows = [
        ("pods created (one node, `process` runtime)", result["pods"], ""),
        ("own network namespace per pod (root + CNI)", result["own_network_namespaces"], ""),
        ("[in ferry up] pods Running", result["running"], f"= {PODS}"),
        ("[in ferry up] startup latency p50 (ms, created -> Running on a watch)", result["startup_p50_ms"], ""),
        ("[in ferry up] startup latency p99 (ms)", result["startup_p99_ms"], f"<= {GOALS['startup_p99_ms']}"),
        ("[in ferry up] first create -> last pod Running (s)", result["all_running_s"], f"<= {GOALS['all_running_s']}"),
        ("[in ferry up] first create -> last create answered (s)", result["all_created_s"], ""),
        ("[in ferry up] ferry up RSS idle (MiB; apiserver, controllers, agent)", result["idle_rss_mib"], ""),
        ("[in ferry up] ferry up RSS with the pods running (MiB)", result["busy_rss_mib"], ""),
        ("[ferry node] pods Running", result["agent_running"], f"= {PODS}"),
        ("[ferry node] startup latency p50 (ms)", result["agent_startup_p50_ms"], ""),
        ("[ferry node] startup latency p99 (ms)", result["agent_startup_p99_ms"], f"<= {GOALS['startup_p99_ms']}"),
        ("[ferry node] first create -> last pod Running (s)", result["agent_all_running_s"], f"<= {GOALS['all_running_s']}"),
        ("[ferry node] first create -> last create answered (s)", result["agent_all_created_s"], ""),
        (f"[ferry node] then one at a time: startup p50 / max of {PACED} (ms)", f"{result.get('agent_one_at_a_time_p50_ms')} / {result.get('agent_one_at_a_time_max_ms')}", ""),
        ("[ferry node] node agent RSS idle (MiB)", result["agent_idle_rss_mib"], f"<= {GOALS['idle_rss_mib']}"),
        ("[ferry node] node agent RSS with the pods running (MiB)", result["agent_busy_rss_mib"], f"<= {GOALS['busy_rss_mib']}"),
        ("[ferry node] of which its own (RssAnon) idle / busy (MiB)", f"{result['agent_idle_anon_mib']} / {result['agent_busy_anon_mib']}", "(the rest: the shared binary's pages)"),
    ]
    if "cni_alone_all_s" in result:
        rows += [
            (f"[peer: CNI alone] {PODS} pod networks at once: all attached (s)", result["cni_alone_all_s"], ""),
            (f"[peer: CNI alone] CPU seconds for them (ip, bridge, host-local)", result["cni_alone_cpu_s"], ""),
        ]
    if "cri_running" in result:
        rows += [
            ("[cri: containerd] pods Running", result["cri_running"], f"= {PODS}"),
            ("[cri: containerd] startup latency p50 (ms)", result["cri_startup_p50_ms"], ""),
            ("[cri: containerd] startup latency p99 (ms)", result["cri_startup_p99_ms"], f"<= {GOALS['cri_startup_p99_ms']}"),
            ("[cri: containerd] first create -> last pod Running (s)", result["cri_all_running_s"], ""),
            ("[cri: containerd] one pod at a time: startup p50 / max of 10 (ms)", f"{result['cri_one_at_a_time_p50_ms']} / {result['cri_one_at_a_time_max_ms']}", ""),
            ("[peer: containerd over CRI alone] one pod at a time p50 (ms)", result.get("raw_containerd", {}).get("one_at_a_time", {}).get("p50_ms"), ""),
            ("[peer: containerd over CRI alone] burst of 100: p50 / p99 (ms)", f"{result.get('raw_containerd', {}).get('burst', {}).get('p50_ms')} / {result.get('raw_containerd', {}).get('burst', {}).get('p99_ms')}", ""),
            ("[peer: containerd over CRI alone] burst of 100: all running (s)", result.get("raw_containerd", {}).get("burst_all_running_s"), ""),
            ("[cri: containerd] ferry up RSS idle / with the pods (MiB)", f"{result['cri_idle_rss_mib']} / {result['cri_busy_rss_mib']}", ""),
        ]
    for name, value, goal in rows:
        print(f"{name:72} {value!s:>10}  {goal}")
    os.makedirs("bench-results", exist_ok=True)
    with open(os.path.join("bench-results", os.environ.get("BENCH_RESULTS", "pods.json")), "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
