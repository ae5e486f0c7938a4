#!/usr/bin/env bash
# Regenerates ops/link/ferry.order: the functions `ferry` runs, in the order Callgrind first
# meets them, for lld's --symbol-ordering-file (see build.rs).
#
# Usage: bash ops/link/order.sh [path/to/release/ferry]   (needs valgrind; `just orderfile`)
#
# Two workloads, each under Callgrind, every function written out by its linker (mangled) name:
# 1. an idle node agent (`ferry node --runtime process`) beside `ferry up --nodes 0`: it
#    registers, renews its Lease and reports its status for SECONDS_UNDER_CALLGRIND seconds;
# 2. the appliance (`ferry up` with two hollow nodes) syncing a small repository of ConfigMaps,
#    Secrets, Deployments and Services until Healthy, then applying a second commit and
#    answering lists and /metrics.
# The agent's functions come first, so the standalone agent's code stays packed; the functions
# only the appliance runs follow them. Names that no longer exist in a later build are skipped
# by the linker, so a stale list only lays out less; regenerate after large changes.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${1:-$root/target/release/ferry}
seconds=${SECONDS_UNDER_CALLGRIND:-25}
command -v valgrind >/dev/null || { echo "order.sh: valgrind is needed" >&2; exit 1; }
[ -x "$bin" ] || { echo "order.sh: build first: cargo build --release" >&2; exit 1; }

work=$(mktemp -d)
up_pid="" node_pid=""
cleanup() {
    [ -n "$node_pid" ] && kill -INT "$node_pid" 2>/dev/null && wait "$node_pid" 2>/dev/null || true
    [ -n "$up_pid" ] && kill "$up_pid" 2>/dev/null && wait "$up_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/repo"
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: order\n' > "$work/repo/ns.yaml"
git -C "$work/repo" init -q
git -C "$work/repo" add -A
git -C "$work/repo" -c user.name=order -c user.email=order@example.org commit -qm order
"$bin" up --source "$work/repo" --name order --data-dir "$work/data" \
    --listen "127.0.0.1:$port" --nodes 0 >"$work/up.log" 2>&1 &
up_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
done

valgrind --tool=callgrind --demangle=no --dump-instr=no --callgrind-out-file="$work/cg.out" \
    "$bin" node --server "http://127.0.0.1:$port" --name order --runtime process \
    --root-dir "$work/node" --pod-cidr 10.211.0.0/24 --endpoint-listen 127.0.0.1:0 \
    >"$work/node.log" 2>&1 &
node_pid=$!
sleep "$seconds"
kill -INT "$node_pid"
wait "$node_pid" || true
node_pid=""
grep -q 'nodes registered' "$work/node.log" || { cat "$work/node.log" >&2; echo "order.sh: the node did not register" >&2; exit 1; }


# The appliance, under Callgrind (about 50 times slower than it runs natively).
repo=$work/apps
mkdir -p "$repo"
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: order\n' > "$repo/ns.yaml"
for i in $(seq 0 19); do
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: config-%s\n  namespace: order\n  labels:\n    app: app-%s\ndata:\n  version: "0"\n' "$i" "$i" > "$repo/config-$i.yaml"
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-%s\n  namespace: order\ntype: Opaque\nstringData:\n  token: t-%s\n' "$i" "$i" > "$repo/secret-$i.yaml"
done
for i in $(seq 0 3); do
    printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%s\n  namespace: order\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: app-%s\n  template:\n    metadata:\n      labels:\n        app: app-%s\n    spec:\n      containers:\n      - name: main\n        image: registry.local/app:1\n        resources:\n          requests:\n            cpu: 100m\n            memory: 64Mi\n' "$i" "$i" "$i" > "$repo/app-$i.yaml"
    printf 'apiVersion: v1\nkind: Service\nmetadata:\n  name: svc-%s\n  namespace: order\nspec:\n  selector:\n    app: app-%s\n  ports:\n  - port: 80\n    targetPort: 8080\n' "$i" "$i" > "$repo/svc-$i.yaml"
done
git -C "$repo" init -q
git -C "$repo" add -A
git -C "$repo" -c user.name=order -c user.email=order@example.org commit -qm apps
kill "$up_pid"
wait "$up_pid" 2>/dev/null || true
up_pid=""
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
valgrind --tool=callgrind --demangle=no --dump-instr=no --callgrind-out-file="$work/cg-up.out" \
    "$bin" up --source "$repo" --name order --data-dir "$work/up-data" --listen "127.0.0.1:$port" \
    --nodes 2 --node-name sim --runtime sim >"$work/up-cg.log" 2>&1 &
up_pid=$!
# The newest Revision's `status.<field>`, or nothing while it cannot be read.
revision() {
    curl -sf --max-time 30 "$base/apis/ferry.dev/v1/namespaces/ferry-system/revisions" | python3 -c '
import json, sys
items = sorted(json.load(sys.stdin)["items"], key=lambda r: r["metadata"]["name"])
print(items[-1].get("status", {}).get(sys.argv[1], "") if items else "")' "$1" 2>/dev/null || true
}
await() { # await FIELD VALUE WHAT
    for _ in $(seq 1200); do
        [ "$(revision "$1")" = "$2" ] && return 0
        kill -0 "$up_pid" 2>/dev/null || break
        sleep 0.5
    done
    cat "$work/up-cg.log" >&2
    echo "order.sh: $3 was not reached under Callgrind" >&2
    exit 1
}
await health Healthy "the first commit's health"
sed -i 's/version: "0"/version: "1"/' "$repo"/config-*.yaml
git -C "$repo" -c user.name=order -c user.email=order@example.org commit -qam second
sha=$(git -C "$repo" rev-parse HEAD)
for _ in $(seq 600); do
    curl -sf --max-time 30 "$base/api/v1/namespaces/order/configmaps/config-0" | grep -q "$sha" && break
    sleep 0.5
done
curl -sf --max-time 30 "$base/api/v1/namespaces/order/configmaps/config-0" | grep -q "$sha" \
    || { echo "order.sh: the second commit was not applied under Callgrind" >&2; exit 1; }
curl -sf --max-time 30 "$base/api/v1/namespaces/order/configmaps?limit=5" >/dev/null
curl -sf --max-time 30 "$base/api/v1/pods?labelSelector=app%3Dapp-0" >/dev/null
curl -sf --max-time 30 "$base/metrics" >/dev/null
kill -INT "$up_pid"
wait "$up_pid" || true
up_pid=""

# `fn=(id) name` (and `cfn=`) name a function the first time it appears; versioned C library
# symbols (name@@GLIBC_...) are not the binary's own. The agent's list first, then the rest.
sed -nE 's/^c?fn=\([0-9]+\) (.+)$/\1/p' "$work/cg.out" "$work/cg-up.out" | grep -v '@' \
    | awk '!seen[$0]++' > "$root/ops/link/ferry.order"
echo "ops/link/ferry.order: $(wc -l < "$root/ops/link/ferry.order") functions"
