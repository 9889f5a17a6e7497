#!/usr/bin/env bash
# MinHash recall on the curation reference corpus (/work/shared/curation/build_corpus.py →
# ~/.cache/fmlab/curation/corpus): fmlab's MinHash (datatrove's defaults: 5-grams, 14 × 8,
# 64-bit xxhash) must find at least datatrove 0.10's 387 of the 403 planted near-duplicate
# pairs; prints the natural duplicates it removes too. DATATROVE=1 also runs datatrove's
# four MinHash stages (venv ~/.cache/fmlab/venv-datatrove, created if missing) and compares
# the two removal sets. fmlab's side is the fmlab-curate `dedup` example (the library's
# in-memory path, and its staged path with 3 ranks, which must remove the same documents).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
corpus_dir="${CORPUS_DIR:-$HOME/.cache/fmlab/curation/corpus}"
corpus="$corpus_dir/docs.jsonl"
dups="$corpus_dir/docs.dups.tsv"
[ -f "$corpus" ] || { echo "no corpus at $corpus: build it with /work/shared/curation/build_corpus.py" >&2; exit 1; }
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}"
venv="${DATATROVE_VENV:-$HOME/.cache/fmlab/venv-datatrove}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p fmlab-curate --example dedup
"$CARGO_TARGET_DIR/release/examples/dedup" "$corpus" --method minhash --clusters "$work/clusters.json" > "$work/ours.json"
python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print('fmlab: %.2f s, %.0f docs/s, %.2f MB/s' % (r['seconds'], r['documents_per_second'], r['mb_per_second']))" "$work/ours.json"
# The staged path with 3 ranks must remove exactly what the in-memory path removes.
"$CARGO_TARGET_DIR/release/examples/dedup" "$corpus" --method minhash --ranks 3 --work "$work/staged" --removed "$work/staged.txt" > /dev/null
"$CARGO_TARGET_DIR/release/examples/dedup" "$corpus" --method minhash --removed "$work/mem.txt" > /dev/null
cmp -s <(sort "$work/staged.txt") <(sort "$work/mem.txt") && echo "staged (3 ranks) = in memory: $(wc -l < "$work/mem.txt") removed" ||
  { echo "FAIL: staged (3 ranks) and in-memory removals differ"; exit 1; }

args=("$dups" --ours "$work/clusters.json")
if [ "${DATATROVE:-0}" = 1 ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/python" -c "import datatrove, spacy, xxhash, orjson" 2> /dev/null ||
    "$venv/bin/pip" install --quiet "datatrove[processing]==0.10.1" spacy xxhash orjson
  "$venv/bin/python" "$root/bench/curate_datatrove.py" minhash "$corpus" "$work/dt" 2> "$work/dt.log" | tail -1
  args+=(--datatrove "$work/dt")
fi
python3 "$root/scripts/check_curate_minhash.py" "${args[@]}"
