"""kubectl exec's work done by the official Python client (its WebSocket, v4.channel.k8s.io):
a command's output, then another's exit code. Prints what it saw; the Rust test judges."""

import sys

from kubernetes import client, config
from kubernetes.stream import stream

config.load_kube_config()
api = client.CoreV1Api()
pod = sys.argv[1]
out = stream(
    api.connect_get_namespaced_pod_exec,
    pod,
    "default",
    command=["sh", "-c", "echo from python $GREETING"],
    stderr=True,
    stdin=False,
    stdout=True,
    tty=False,
)
print("output:", out.strip())
resp = stream(
    api.connect_get_namespaced_pod_exec,
    pod,
    "default",
    command=["sh", "-c", "read line; echo got $line; exit 4"],
    stderr=True,
    stdin=True,
    stdout=True,
    tty=False,
    _preload_content=False,
)
resp.write_stdin("this\n")
resp.run_forever(timeout=10)
print("stdout:", resp.read_stdout().strip() if resp.peek_stdout() else "")
print("exit:", resp.returncode)
