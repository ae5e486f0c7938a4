"""What the benchmark scripts share about the processes they start: a free loopback port, an
apiserver on SQLite and the stopping of everything started, a process's resident memory and CPU
time, and plain JSON calls to the apiserver."""
import json
import os
import socket
import subprocess
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_apiserver(ferry, work):
    """`ferry apiserver` on SQLite under `work`, on a free loopback port, once it listens:
    (process, base URL)."""
    port = free_port()
    api = subprocess.Popen([ferry, "apiserver", "--data-dir", os.path.join(work, "data"),
                            "--listen", f"127.0.0.1:{port}"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    api.stdout.readline()
    return api, f"http://127.0.0.1:{port}"


def stop_all(procs):
    """SIGTERM to every process, newest first; SIGKILL to one that has not ended in 20 s."""
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()


def rss_mib(pid, field="VmRSS"):
    """Resident memory in MiB: all of it (`VmRSS`), or one part (`RssAnon`: the process's own
    heap and stacks; `RssFile`: pages of its binary and libraries, shared with other processes
    that map them)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def get(url):
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.load(r)


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status


def patch(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="PATCH",
                                 headers={"Content-Type": "application/merge-patch+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.status


def ready_nodes(base):
    items = get(f"{base}/api/v1/nodes")["items"]
    return sum(1 for n in items for c in n.get("status", {}).get("conditions", [])
               if c["type"] == "Ready" and c["status"] == "True")
