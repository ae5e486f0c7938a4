# ferry's task runner: each recipe is a thin call of what README.md says.

default: test

# Run what ferry can run today (`ferry up` arrives with the apiserver and GitOps issues).
up:
    cargo run --release -- validate fixtures/demo

# Every test, with its set-up (the README's test command).
test:
    ./ops/test.sh

# End-to-end tests only: the ferry binary against real inputs, kubectl, PostgreSQL, the kube
# crate and kubernetes-validate.
e2e:
    cargo test --test validate_cli --test parity_corpus --test apiserver_kubectl
    cargo test -p ferry-apiserver --test storage --test kube_client
    python3 ops/bench/parity.py

# Benchmarks: `just bench validate`, `just bench apiserver` (numbers to stdout and
# bench-results/<what>.json).
bench what="validate":
    cargo build --release
    cargo build --release -p ferry-apiserver --example apibench
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
