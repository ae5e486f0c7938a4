# ferry's task runner: each recipe is a thin call of what README.md says.

default: test

# Run the appliance: the apiserver, the GitOps engine following fixtures/demo (SQLite), the
# scheduler, the controllers, node lifecycle and one node running real processes.
up:
    cargo run --release -- up

# Every test, with its set-up (the README's test command).
test:
    ./ops/test.sh

# End-to-end tests only: the ferry binary against real inputs, kubectl, git, PostgreSQL, the
# kube crate, containerd and kubernetes-validate.
e2e:
    cargo test --test validate_cli --test parity_corpus --test apiserver_kubectl --test apiserver_real_clients --test gitops --test nodes --test workloads --test jobs --test daemonsets --test statefulsets --test endpoints --test disruption --test quota --test pods_process --test pods_cri --test kube_exec
    cargo test -p ferry-apiserver --test storage --test kube_client --test transaction
    python3 ops/bench/parity.py

# Benchmarks: `just bench validate`, `just bench apiserver`, `just bench gitops`,
# `just bench scheduler`, `just bench controllers`, `just bench controller_memory`,
# `just bench pods`, `just bench portforward`
# (numbers to stdout and bench-results/<what>.json).
bench what="validate":
    cargo build --release
    cargo build --release -p ferry-apiserver --example apibench
    cargo build --release -p ferry-reconciler --example schedbench --example podload
    cargo build --release -p ferry-nodeagent --example cri_raw
    python3 ops/bench/{{what}}.py

# Formatting and lints, as CI runs them.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# What CI runs on a clean clone.
ci:
    CI=true bash .ci/run

# Regenerate the checked-in JSON Schemas in schema/jsonschema/ from the types.
schemas:
    FERRY_BLESS=1 cargo test -p ferry-schema --test schema_files

# Fuzz the manifest loader and validator (stable toolchain; needs `cargo install cargo-fuzz`).
fuzz seconds="300":
    cd fuzz && mkdir -p corpus && RUSTC_BOOTSTRAP=1 cargo fuzz run validate corpus seeds -- -max_total_time={{seconds}} -rss_limit_mb=2048 -max_len=65536

# Regenerate the protobuf message table (apiserver/src/api/protobuf/messages.json) from k8s-pb
# and the schemas.
protobuf:
    python3 ops/protobuf/generate.py

# Regenerate the release link order (ops/link/ferry.order: the functions an idle node agent, then
# the appliance syncing a small repository, run, laid out together; see build.rs). Needs valgrind.
orderfile:
    cargo build --release
    bash ops/link/order.sh
