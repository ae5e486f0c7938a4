"""kubectl port-forward's work done by the official Python client (the kubelet's WebSocket
channel protocol, v4.channel.k8s.io): an HTTP GET through a forwarded port, then a port
nothing listens on. Prints what it saw; the Rust test judges."""

import hashlib
import sys

from kubernetes import client, config
from kubernetes.stream import portforward

config.load_kube_config()
api = client.CoreV1Api()
pod, namespace, port, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

forward = portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
sock = forward.socket(port)
sock.setblocking(True)
sock.sendall(("GET %s HTTP/1.0\r\nHost: pod\r\n\r\n" % path).encode())
answer = b""
while True:
    chunk = sock.recv(65536)
    if not chunk:
        break
    answer += chunk
sock.close()
head, _, body = answer.partition(b"\r\n\r\n")
print("status:", head.split(b"\r\n", 1)[0].decode())
print("body: %d bytes sha256 %s" % (len(body), hashlib.sha256(body).hexdigest()))
print("error:", forward.error(port))

closed = portforward(api.connect_get_namespaced_pod_portforward, pod, namespace, ports="1")
sock = closed.socket(1)
sock.setblocking(True)
try:
    while sock.recv(65536):
        pass
except OSError as e:
    print("closed port socket:", e)
closed.close()
print("closed port error:", closed.error(1))
