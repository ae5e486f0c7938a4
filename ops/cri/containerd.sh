#!/usr/bin/env bash
# Runs a containerd of its own for ferry's `cri` runtime: config, root, state, socket and CNI
# configuration all under DIR, so that a test or a benchmark owns everything it starts.
#
#   ops/cri/containerd.sh DIR [REGISTRY]   (runs in the foreground: exec containerd)
#
# The CRI plugin's socket is DIR/containerd.sock. The pod network is CNI `bridge` +
# `host-local` + `portmap` from Debian's containernetworking-plugins, written by containerd
# from DIR/cni-template.json once the node agent tells it the node's podCIDR
# (UpdateRuntimeConfig), as a kubelet does. The sandbox image is ferry.local/pause:1 (built by
# ops/cri/images.sh and imported by the caller). REGISTRY (host:port on loopback) is reached
# over plain HTTP.
set -euo pipefail
dir=${1:?usage: containerd.sh DIR [REGISTRY]}
registry=${2:-127.0.0.1:5000}
mkdir -p "$dir/root" "$dir/state" "$dir/cni" "$dir/logs"
dir=$(cd "$dir" && pwd)
bridge=${FERRY_CRI_BRIDGE:-ferrycri0}

cat > "$dir/cni-template.json" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "ferry-cri",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "{{.PodCIDR}}"}]],
        "dataDir": "$dir/cni-ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri.disabled", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "$dir/containerd.sock"

[ttrpc]
  address = "$dir/containerd.sock.ttrpc"

[debug]
  level = "warn"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "ferry.local/pause:1"
  # This machine lacks CAP_SYS_RESOURCE: the default -998 for sandboxes makes runc fail.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni"
    conf_template = "$dir/cni-template.json"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$registry"]
    endpoint = ["http://$registry"]
  [plugins."io.containerd.grpc.v1.cri".registry.configs."$registry".tls]
    insecure_skip_verify = true
TOML

exec containerd --config "$dir/config.toml"
