#!/usr/bin/env python3
"""Generates the validation benchmark corpus: one directory of manifest files, each holding one
app's Deployment, Service and ConfigMap (three resources). Deterministic for a given count.

usage: corpus.py OUT_DIR RESOURCES [--invalid-every N]
"""
import os
import sys

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-{i}
  namespace: team-{team}
  labels:
    app: app-{i}
    app.kubernetes.io/part-of: bench
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: app-{i}
  template:
    metadata:
      labels:
        app: app-{i}
    spec:
      containers:
        - name: app
          image: registry.example.com/app-{i}:1.{i}
          ports:
            - name: http
              containerPort: {port}
          env:
            - name: MODE
              value: production
          resources:
            requests:
              cpu: 100m
              memory: 64Mi
            limits:
              cpu: "1"
              memory: 256Mi
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
"""

SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: app-{i}
  namespace: team-{team}
spec:
  selector:
    app: app-{i}
  ports:
    - name: http
      port: 80
      targetPort: http
"""

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: app-{i}-config
  namespace: team-{team}
data:
  LOG_LEVEL: info
  FEATURE_FLAGS: "a,b,c"
  app.properties: |
    threads=4
    timeout=30s
"""


def main():
    out, resources = sys.argv[1], int(sys.argv[2])
    invalid_every = 0
    if "--invalid-every" in sys.argv:
        invalid_every = int(sys.argv[sys.argv.index("--invalid-every") + 1])
    os.makedirs(out, exist_ok=True)
    apps = resources // 3
    for i in range(apps):
        fields = dict(i=i, team=i % 20, replicas=1 + i % 5, port=8000 + i % 1000)
        if invalid_every and i % invalid_every == invalid_every - 1:
            fields["port"] = 70000 + i  # out of range: an apiserver would refuse it
        text = "---\n".join(t.format(**fields) for t in (DEPLOYMENT, SERVICE, CONFIGMAP))
        with open(os.path.join(out, f"app-{i:05d}.yaml"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
