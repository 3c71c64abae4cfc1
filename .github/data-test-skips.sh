#!/usr/bin/env bash
# Prints `--skip NAME` for each test whose #[ignore] reason says it needs data that only the
# project's own CI keeps beside the clone: the published reference data, the metric reference
# values or the development pairs. A GitHub runner passes them to `cargo test -- --ignored` and
# so runs every other ignored test (the GPU ones, on lavapipe). The reasons are the single source:
# a new data test is skipped there as soon as its reason says what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -rh --include='*.rs' -A3 -E '#\[ignore = "needs[^"]*(reference data|metric reference|dev pairs)' src tests \
  | awk '/#\[ignore/ { want = 1; next } want && match($0, /fn [A-Za-z0-9_]+/) {
           print "--skip " substr($0, RSTART + 3, RLENGTH - 3); want = 0 }'
