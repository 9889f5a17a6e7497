#!/usr/bin/env bash
# README's test command: fetches the reference models the tests read (once; see
# scripts/fetch-models.sh), runs every test of the workspace, and prints a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-models.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -o '[0-9]* passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -o '[0-9]* failed' "$log" | awk '{s += $1} END {print s + 0}')
binaries=$(grep -c '^test result:' "$log" || true)
echo
echo "fmlab tests: $passed passed, $failed failed, in $binaries test binaries"
exit "$status"
