#!/usr/bin/env bash
# Speed of `fmlab world` (one core: the generator is single-threaded): corpus megabytes per
# second of wall time for the whole run (knowledge base, corpus, SFT, preferences, eval),
# median of REPS runs at SIZE (default 200MB).
source "$(dirname "$0")/lib.sh"
REPS="${REPS:-3}"
SIZE="${SIZE:-200MB}"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
secs=$(median_seconds "$REPS" taskset -c 0 "$FMLAB" world --seed 1 --size "$SIZE" --out "$out/w")
bytes=$("$PY" -c "import json; print(json.load(open('$out/w/manifest.json'))['summary']['corpus_bytes'])")
"$PY" -c "print(f'fmlab world --size $SIZE: {$bytes / 1e6:.0f} MB of corpus in {$secs:.2f} s = {$bytes / 1e6 / $secs:.1f} MB/s (one core; target ≥ 50 MB/s)')"
