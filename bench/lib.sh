# Shared helpers for the bench scripts: a release build of fmlab and a median timer.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p fmlab-cli
FMLAB="$CARGO_TARGET_DIR/release/fmlab"
venv="$HOME/.cache/fmlab/bench-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
PY="$venv/bin/python"

# median_seconds N command...: runs the command N times, prints the median wall time.
median_seconds() {
  local n=$1; shift
  local times=()
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" > /dev/null
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {printf "%.4f\n", a[int((NR + 1) / 2)] / 1e6}'
}
