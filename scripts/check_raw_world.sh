#!/usr/bin/env bash
# Curation measured on the raw web: writes a `fmlab world --raw` world (5 MB), curates its
# raw.jsonl with FineWeb's pipeline (configs/curate/raw-web.toml: URL blocklist, language
# en, Gopher repetition and quality, C4, FineWeb, MinHash) and with the variant keeping
# en, fr and sw, and scores both runs against the world's ground truth (the raw_score
# example): recall and precision per junk kind, boilerplate lines removed, good pages
# dropped by rule, good pages kept by language and domain.
#
#   scripts/check_raw_world.sh [WORK_DIR]      (SIZE=5MB SEED=0 by default)
#   DATATROVE=1 scripts/check_raw_world.sh     also runs datatrove 0.10's URL filter and
#                                              four quality filters on the same pages
#                                              (scripts/check_raw_world.py, in the venv
#                                              ~/.cache/fmlab/venv-datatrove, made if missing)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$(mktemp -d -t fmlab-raw-world.XXXXXX)}
SIZE=${SIZE:-5MB}
SEED=${SEED:-0}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

echo "== building fmlab and the raw_score example (release)"
(cd "$ROOT" && cargo build --release -q -p fmlab-cli && cargo build --release -q -p fmlab-curate --example raw_score)
FMLAB=$CARGO_TARGET_DIR/release/fmlab
SCORE=$CARGO_TARGET_DIR/release/examples/raw_score

echo "== world: $SIZE, seed $SEED, --raw → $WORK/world"
rm -rf "$WORK/world"
"$FMLAB" world --out "$WORK/world" --size "$SIZE" --seed "$SEED" --raw

for run in raw-web:en raw-web-en-fr-sw:en,fr,sw; do
    cfg=${run%%:*}
    keep=${run##*:}
    echo
    echo "== fmlab curate --config configs/curate/$cfg.toml (keeps $keep)"
    rm -rf "$WORK/$cfg"
    # The config's paths are relative to the repository root, its world is world/: point
    # it at this one.
    sed "s|\"world/raw-blocklist.txt\"|\"$WORK/world/raw-blocklist.txt\"|" \
        "$ROOT/configs/curate/$cfg.toml" > "$WORK/$cfg.toml"
    (cd "$ROOT" && "$FMLAB" curate "$WORK/world/raw.jsonl" --out "$WORK/$cfg" \
        --config "$WORK/$cfg.toml" --json > "$WORK/$cfg.report.json")
    "$SCORE" "$WORK/world/raw.jsonl" "$WORK/$cfg" --keep "$keep" --json "$WORK/$cfg.score.json"
done

if [ "${DATATROVE:-0}" = 1 ]; then
    echo
    echo "== datatrove 0.10 on the same pages (URL filter, Gopher repetition and quality, C4, FineWeb)"
    venv=${DATATROVE_VENV:-$HOME/.cache/fmlab/venv-datatrove}
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -c "import datatrove, spacy" 2> /dev/null ||
        "$venv/bin/pip" install --quiet "datatrove[processing]==0.10.1" spacy
    "$venv/bin/python" "$ROOT/scripts/check_raw_world.py" "$WORK/world/raw.jsonl" \
        "$WORK/world/raw-blocklist.txt" "$WORK/datatrove.json" 2> >(grep -v -i "public suffix\|gaierror\|direct cause\|^$" >&2)
fi
echo
echo "outputs under $WORK"
