#!/usr/bin/env bash
# Keep/drop agreement of fmlab's FineWeb quality filters with datatrove 0.10's on a JSONL
# corpus ({"id", "text"} a line; default: the reference corpus built by
# ../shared/curation/build_corpus.py), per filter, each filter alone and the four in order.
#
#   scripts/check_curate_filters.sh [DOCS.jsonl] [WORK_DIR]
#
# Creates (or reuses) the venv ~/.cache/fmlab/venv-datatrove with datatrove[processing] 0.10
# and spaCy, runs datatrove's four filters with FineWeb's settings (datatrove's decisions are
# cached in WORK_DIR, keyed by the corpus's checksum), runs ours (the curate_filters
# example, release build) and prints the comparison. With FMLAB_RECORD_FIXTURE=1 it also
# records datatrove's decisions on crates/fmlab-curate/tests/fixtures/filters_docs.jsonl
# into filters_datatrove.jsonl beside it (the fixture the Rust test compares with).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOCS="${1:-$HOME/.cache/fmlab/curation/corpus/docs.jsonl}"
WORK="${2:-$HOME/.cache/fmlab/curate-filters-check}"
VENV="${FMLAB_DATATROVE_VENV:-$HOME/.cache/fmlab/venv-datatrove}"
mkdir -p "$WORK"
[ -f "$DOCS" ] || { echo "no corpus at $DOCS (build it with ../shared/curation/build_corpus.py)" >&2; exit 1; }

if ! "$VENV/bin/python" -c "import datatrove, spacy" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "datatrove[processing]==0.10.*" spacy
fi
PY="$VENV/bin/python"

SUM="$(sha256sum "$DOCS" | cut -c1-16)"
DT="$WORK/datatrove-$SUM.jsonl"
if [ ! -s "$DT" ]; then
  echo "datatrove: running its four filters on $DOCS (slow: about 20 documents/s)…" >&2
  "$PY" "$ROOT/scripts/check_curate_filters.py" datatrove "$DOCS" "$DT.tmp"
  mv "$DT.tmp" "$DT"
fi

cd "$ROOT"
cargo build --quiet --release -p fmlab-curate --example curate_filters
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/curate_filters"
"$BIN" decisions "$DOCS" "$WORK/fmlab.jsonl"
"$PY" "$ROOT/scripts/check_curate_filters.py" compare "$DT" "$WORK/fmlab.jsonl"
echo "== speed (this machine, one thread; datatrove: about 20 documents/s, 0.13 MB/s)"
"$BIN" bench "$DOCS"

if [ "${FMLAB_RECORD_FIXTURE:-0}" = 1 ]; then
  FIX="$ROOT/crates/fmlab-curate/tests/fixtures"
  "$PY" "$ROOT/scripts/check_curate_filters.py" datatrove "$FIX/filters_docs.jsonl" "$FIX/filters_datatrove.jsonl"
  echo "recorded $FIX/filters_datatrove.jsonl" >&2
fi
