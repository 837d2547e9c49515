#!/usr/bin/env bash
# Installs dependencies, builds minik8s, and runs the server with the embedded store.
# Extra arguments go to `minik8s server` (e.g. --data-dir /tmp/m --https-listen-port 7443).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release -p minik8s
data_dir=/var/lib/minik8s
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --data-dir) data_dir="${args[$((i + 1))]}" ;;
    --data-dir=*) data_dir="${args[$i]#--data-dir=}" ;;
  esac
done
echo "starting minik8s server; kubeconfig: ${data_dir}/kubeconfig.yaml (export KUBECONFIG=${data_dir}/kubeconfig.yaml)"
exec ./target/release/minik8s server "$@"
