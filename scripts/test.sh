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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --release --workspace --no-fail-fast --lib --bins --tests -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
