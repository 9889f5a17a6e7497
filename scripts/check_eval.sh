#!/usr/bin/env bash
# `fmlab eval run` held to lm-evaluation-harness on fmlab's own task suite
# (scripts/eval_tasks): see scripts/check_eval.py. Release build; lm-evaluation-harness in
# the venv check_serve.sh makes (~/.cache/fmlab/venv-serve). Takes ~5 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}"
bash scripts/fetch-models.sh
cargo build --release -p fmlab-cli --locked
venv="$HOME/.cache/fmlab/venv-serve"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q 'lm_eval[api]==0.4.13' requests
FMLAB="$CARGO_TARGET_DIR/release/fmlab" HF_DATASETS_OFFLINE=1 "$venv/bin/python" scripts/check_eval.py "$@"
