#!/usr/bin/env bash
# Runs every test tier: formatting and lints, unit and in-process integration tests, and
# the e2e suites (real kubectl against real servers; they need root, kubectl and etcd).
# One build profile (release) serves the tests and the e2e binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --release --all-targets -- -D warnings
cargo build --release -p minik8s
export MINIK8S_BIN="$PWD/target/release/minik8s"
cargo test --release --workspace -- --test-threads=2
