"""What the benchmark scripts share about the processes they start: a free loopback port, a
throwaway PostgreSQL, an apiserver on SQLite or PostgreSQL and the stopping of everything started, a process's resident memory and CPU
time, and plain JSON calls to the apiserver."""
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Postgres:
    """A throwaway PostgreSQL server (initdb/pg_ctl in a temp dir, fsync on, run as the
    `postgres` user when root); `url` is its database `bench`."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not bins:
            sys.exit("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = os.path.dirname(bins[-1])
        self.dir = tempfile.mkdtemp(prefix="ferry-bench-pg-")
        self.port = free_port()
        self.root = os.geteuid() == 0
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        data = os.path.join(self.dir, "data")
        self.run("initdb", "-D", data, "-A", "trust", "-U", "ferry", "--no-sync", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200"
        self.run("pg_ctl", "-D", data, "-l", os.path.join(self.dir, "log"), "-o", opts, "-w", "start")
        self.run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "ferry", "bench")
        self.url = f"postgres://ferry@127.0.0.1:{self.port}/bench"

    def run(self, tool, *args):
        cmd = [os.path.join(self.bindir, tool), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def stop(self):
        self.run("pg_ctl", "-D", os.path.join(self.dir, "data"), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


def start_apiserver(ferry, work, db=None):
    """`ferry apiserver` on SQLite under `work` (or on the database URL `db`), on a free
    loopback port, once it listens: (process, base URL)."""
    port = free_port()
    args = [ferry, "apiserver", "--data-dir", os.path.join(work, "data"), "--listen", f"127.0.0.1:{port}"]
    if db:
        args += ["--db", db]
    api = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
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
