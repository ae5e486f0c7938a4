#!/usr/bin/env bash
# Runs a container registry on loopback (Debian's docker-registry, the CNCF distribution) for
# the cri runtime's pull tests: storage and config under DIR, listening on 127.0.0.1:PORT,
# basic auth from DIR/htpasswd (user `ferry`, password PASSWORD) so that pull secrets are
# tested for real.
#
#   ops/cri/registry.sh DIR PORT PASSWORD   (runs in the foreground: exec docker-registry)
set -euo pipefail
dir=${1:?usage: registry.sh DIR PORT PASSWORD}
port=${2:?usage: registry.sh DIR PORT PASSWORD}
password=${3:?usage: registry.sh DIR PORT PASSWORD}
mkdir -p "$dir/storage"
dir=$(cd "$dir" && pwd)
# A bcrypt entry, as the registry's htpasswd reader wants (glibc's crypt does bcrypt).
python3 -W ignore -c 'import crypt, sys; print("ferry:" + crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
  "$password" > "$dir/htpasswd"
cat > "$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/storage
http:
  addr: 127.0.0.1:$port
auth:
  htpasswd:
    realm: ferry
    path: $dir/htpasswd
YAML
exec docker-registry serve "$dir/config.yml"
