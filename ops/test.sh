#!/usr/bin/env bash
# The README's test command: sets up what the tests need, then runs every test.
#
# Needs only a Rust toolchain and python3 on a fresh machine. Outside tools a test depends on
# are installed here when missing; under CI=true a tool that cannot be had is a failure, never
# a silent skip.
set -euo pipefail
cd "$(dirname "$0")/.."

need() { # need TOOL WHY: fail under CI when TOOL is missing, else warn
  if ! command -v "$1" >/dev/null 2>&1; then
    if [ "${CI:-}" = "true" ]; then
      echo "test.sh: $1 is required ($2) and is not installed" >&2
      exit 1
    fi
    echo "test.sh: warning: $1 not found ($2); those checks will not run" >&2
    return 1
  fi
}

can_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }

apt_install() { # apt_install PACKAGE
  echo "== installing $1 (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >/dev/null
}

install_server() { # install_server PACKAGE SERVICE WHY: a server the tests start themselves
  if can_apt; then
    apt_install "$1"
    # The package starts a server of its own; the tests do not use it.
    service "$2" stop >/dev/null 2>&1 || true
  elif [ "${CI:-}" = "true" ]; then
    echo "test.sh: $1 is required ($3) and cannot be installed here (not root, or no apt-get)" >&2
    exit 1
  else
    echo "test.sh: warning: $1 not installed; $3 will not run" >&2
  fi
}

need cargo "builds and runs the tests"
need python3 "runs the verdict-parity comparison with kubernetes-validate" || true

# kubectl: the judge of API compatibility. The cloud SDK's kubectl.1.33 is preferred by the
# tests; any kubectl on PATH will do. Under CI=true its absence fails the run.
if [ ! -x /usr/lib/google-cloud-sdk/bin/kubectl.1.33 ]; then
  need kubectl "drives the apiserver in the end-to-end tests" || true
fi

# git: the GitOps suite makes real repositories and commits and serves one with git daemon.
if ! command -v git >/dev/null 2>&1; then
  can_apt && apt_install git
  need git "makes the repositories the GitOps tests follow" || true
fi

# openssl and python3: the HTTPS Git test makes a throwaway CA with openssl and serves a
# repository through `git http-backend` behind TLS (tests/support/git_https_server.py).
if ! command -v openssl >/dev/null 2>&1; then
  can_apt && apt_install openssl
  need openssl "makes the certificates of the HTTPS Git test" || true
fi

# sshd: the ssh:// Git test serves a repository through OpenSSH's server on a loopback port
# (started by the test itself, with keys it makes).
if [ ! -x /usr/sbin/sshd ] && ! command -v sshd >/dev/null 2>&1; then
  install_server openssh-server ssh "the ssh:// Git test"
fi

# PostgreSQL: the storage suite runs on it as well as on SQLite. The tests start a throwaway
# server themselves (initdb/pg_ctl in a temp dir); here we only make sure it is installed.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  install_server postgresql postgresql "the PostgreSQL half of the storage, kubectl and GitOps suites"
fi

# The CNI plugins (bridge, host-local): as root, the process runtime gives each pod a network
# namespace of its own on a bridge (tests/pods_process.rs checks the pod IPs and reaches them).
if [ "$(id -u)" = "0" ] && [ ! -x /usr/lib/cni/bridge ]; then
  if can_apt; then
    apt_install containernetworking-plugins
  fi
  if [ ! -x /usr/lib/cni/bridge ] && [ "${CI:-}" = "true" ]; then
    echo "test.sh: containernetworking-plugins is required (pod networks of the process runtime) and cannot be installed" >&2
    exit 1
  fi
fi
need ip "puts the process runtime's pods in network namespaces (iproute2)" || true

# The cri runtime's suite (tests/pods_cri.rs) starts a containerd of its own (ops/cri/), builds
# the local busybox images with umoci and pulls from a loopback docker-registry; as root.
if [ "$(id -u)" = "0" ]; then
  for pair in containerd:containerd runc:runc umoci:umoci busybox:busybox-static \
              docker-registry:docker-registry curl:curl; do
    tool=${pair%%:*} package=${pair#*:}
    if ! command -v "$tool" >/dev/null 2>&1 && can_apt; then
      apt_install "$package"
    fi
    if ! command -v "$tool" >/dev/null 2>&1 && [ "${CI:-}" = "true" ]; then
      echo "test.sh: $tool ($package) is required (the cri runtime's suite) and cannot be installed" >&2
      exit 1
    fi
  done
fi

# The official Python kubernetes client: the apiserver suite drives it (paging a selector list,
# reading Status bodies). Installed from PyPI into target/client-venv, once.
if command -v python3 >/dev/null 2>&1; then
  if ! target/client-venv/bin/python -c "import kubernetes" >/dev/null 2>&1; then
    echo "== installing the Python kubernetes client into target/client-venv"
    python3 -m venv target/client-venv
    target/client-venv/bin/pip install -q "kubernetes==33.1.0"
  fi
fi

echo "== cargo test (workspace)"
cargo test --workspace --all-targets

if command -v python3 >/dev/null 2>&1; then
  echo "== the protobuf message table matches k8s-pb and the schemas"
  python3 ops/protobuf/generate.py --check
  echo "== verdict parity with kubernetes-validate (fixtures/parity)"
  # Installs kubernetes-validate into target/bench-venv from PyPI on first use.
  python3 ops/bench/parity.py
fi
