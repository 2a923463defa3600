#!/usr/bin/env bash
# Runs every test: installs what the tests need, checks formatting and lints, builds, then
# unit/property tests (cargo), a short fuzz run, and end-to-end tests that start the real
# `nurt` binary and drive it with real clients. Any failure fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# Style is part of the build: a formatting difference or a clippy warning fails the run.
cargo fmt --all --check
cargo clippy --all-targets -- -D warnings
# Default members only: the benchmark driver (librdkafka, NATS) is not built for tests.
cargo build --bins
cargo test
scripts/fuzz.sh
# Every end-to-end test has a time limit (pytest-timeout), so a wedged broker fails the run
# instead of hanging it; tests that need longer say so with @pytest.mark.timeout.
python3 -m pytest tests/e2e -q -p no:warnings --timeout=300 "$@"
