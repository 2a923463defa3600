#!/usr/bin/env bash
# Runs every fuzz target for FUZZ_SECONDS each (default 20), starting from the seeds captured
# from real clients (fuzz/seeds) plus whatever earlier runs found (fuzz/corpus). A crash fails
# the run and leaves the input in fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
log=$(mktemp)
for target in request_decode record_batch log_recovery; do
  mkdir -p "corpus/$target"
  echo "fuzzing $target for ${seconds}s"
  if ! cargo fuzz run "$target" "corpus/$target" "seeds/$target" -s none -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
    tail -60 "$log"
    echo "fuzz target $target failed" >&2
    exit 1
  fi
  grep -E "^Done" "$log" || true
done
rm -f "$log"
