#!/usr/bin/env bash
# Builds the small local OCI images the cri runtime's tests and benchmark use (no registry can
# be reached from here): a busybox image and the pod sandbox ("pause") image, both from
# Debian's busybox-static, laid out with umoci and tarred for `ctr images import`.
#
#   ops/cri/images.sh OUT_DIR   ->  OUT_DIR/busybox.tar, OUT_DIR/pause.tar
#
# Rebuilt only when missing. Needs umoci and busybox-static. Safe to run from several
# processes at once (tests start containerd in parallel): one holds OUT_DIR/.lock and builds,
# the others wait for it and then find the images there.
set -euo pipefail
out=${1:?usage: images.sh OUT_DIR}
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ -s "$out/busybox.tar" && -s "$out/pause.tar" ]]; then
  exit 0
fi
for tool in umoci busybox; do
  command -v "$tool" >/dev/null || { echo "images.sh: $tool is missing (apt-get install umoci busybox-static)" >&2; exit 1; }
done
busybox_bin=$(command -v busybox)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One image: NAME, then the entrypoint and cmd as JSON-free words (entrypoint first, `--`,
# then cmd).
build() {
  local name=$1 entrypoint=$2 cmd=$3
  local layout="$work/$name"
  umoci init --layout "$layout"
  umoci new --image "$layout:1"
  umoci unpack --rootless --image "$layout:1" "$work/bundle-$name" >/dev/null
  local root="$work/bundle-$name/rootfs"
  mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/proc" "$root/sys" "$root/dev" "$root/root" "$root/var/www"
  chmod 1777 "$root/tmp"
  cp "$busybox_bin" "$root/bin/busybox"
  # Every applet as a link, so that `sh`, `sleep`, `wget`, `httpd`... are commands.
  for applet in $("$busybox_bin" --list); do
    [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$root/etc/group"
  echo "hello from ferry" > "$root/var/www/index.html"
  umoci repack --image "$layout:1" "$work/bundle-$name" >/dev/null
  umoci config --image "$layout:1" --config.entrypoint "$entrypoint" ${cmd:+--config.cmd "$cmd"} \
    --config.env PATH=/bin --config.workingdir /
  tar -C "$layout" -cf "$out/$name.tar.partial.$$" .
  mv "$out/$name.tar.partial.$$" "$out/$name.tar"
}

build busybox /bin/sh ""
build pause /bin/sleep infinity
echo "images.sh: built $out/busybox.tar and $out/pause.tar"
