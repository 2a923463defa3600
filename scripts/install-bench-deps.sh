#!/usr/bin/env bash
# Installs the peers `nurt bench` runs side by side with Nurt (NATS JetStream and Redis
# Streams, from Debian), then builds the broker and the benchmark driver.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v nats-server >/dev/null || ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq nats-server redis-server redis-tools >/dev/null
fi
cargo build --release -p nurt -p nurt-bench
