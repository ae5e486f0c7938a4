"""The official Python kubernetes client against ferry (run by tests/apiserver_real_clients.rs).

Pages a label-selector list to the end, 100 at a time, and reads a 404 Status as text, as the
client's own e2e tests compare it. Prints what it found; exits non-zero when something is off.
"""
import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException


def main():
    config.load_kube_config()
    v1 = client.CoreV1Api()

    names, pages, token = [], 0, None
    while True:
        page = v1.list_namespaced_config_map("py", label_selector="parity=odd", limit=100,
                                             _continue=token)
        pages += 1
        names.extend(item.metadata.name for item in page.items)
        token = page.metadata._continue
        if not token:
            break
    if len(set(names)) != len(names):
        sys.exit(f"an object came twice: {sorted(names)}")
    print(f"odd: {len(names)} in {pages} pages")

    try:
        v1.read_namespaced_pod("nope", "py")
        sys.exit("reading a missing pod did not fail")
    except ApiException as e:
        want = ('{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                '"message":"pods \\"nope\\" not found","reason":"NotFound",'
                '"details":{"name":"nope","kind":"pods"},"code":404}\n')
        body = e.body.decode() if isinstance(e.body, bytes) else e.body
        if e.status != 404 or body != want:
            sys.exit(f"status bytes differ:\n got {body!r}\nwant {want!r}")
    print("status bytes: ok")


if __name__ == "__main__":
    main()
