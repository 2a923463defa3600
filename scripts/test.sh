#!/usr/bin/env bash
# Runs every test: installs what the tests need, builds, then unit/property tests (cargo)
# and end-to-end tests that start the real `nurt` binary and drive it with real clients.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
cargo build --workspace --bins
cargo test --workspace
scripts/fuzz.sh
python3 -m pytest tests/e2e -q -p no:warnings "$@"
