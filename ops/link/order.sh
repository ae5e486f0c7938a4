#!/usr/bin/env bash
# Regenerates ops/link/ferry.order: the functions an idle node agent runs, in the order
# Callgrind first meets them, for lld's --symbol-ordering-file (see build.rs).
#
# Usage: bash ops/link/order.sh [path/to/release/ferry]   (needs valgrind; `just orderfile`)
#
# The node agent (`ferry node --runtime process`) starts beside `ferry up --nodes 0`, registers,
# renews its Lease and reports its status for SECONDS seconds under Callgrind; every function it
# ran is written out by its linker (mangled) name. Names that no longer exist in a later build
# are skipped by the linker, so a stale list only lays out less; regenerate after large changes.
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

# `fn=(id) name` (and `cfn=`) name a function the first time it appears; versioned C library
# symbols (name@@GLIBC_...) are not the binary's own.
sed -nE 's/^c?fn=\([0-9]+\) (.+)$/\1/p' "$work/cg.out" | grep -v '@' | awk '!seen[$0]++' \
    > "$root/ops/link/ferry.order"
echo "ops/link/ferry.order: $(wc -l < "$root/ops/link/ferry.order") functions"
