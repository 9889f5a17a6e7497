#!/usr/bin/env bash
# `fmlab serve` held to the tools people use with it, unmodified:
#  - scripts/check_serve.py: the `openai` Python client and lm-evaluation-harness
#    (local-completions on a multiple_choice, a loglikelihood_rolling and a generate_until
#    task, local-chat-completions), their scores checked against llama.cpp's own scoring
#    (llama-cpp-python, built from the sdist the other references came from);
#  - scripts/check_playground.cjs: the playground in Debian's chromium, driven by
#    playwright-core; its screenshot is written to $SCREENSHOT (default
#    target-dir/playground.png).
# Installs what it needs under ~/.cache/fmlab (venvs, node_modules); the llama-cpp-python
# build takes ~10 minutes the first time. chromium comes from Debian (`apt-get install
# chromium`); without it the browser check is skipped with a notice.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}"
cache="$HOME/.cache/fmlab"
bash scripts/fetch-models.sh
cargo build -p fmlab-cli --locked
fmlab="$CARGO_TARGET_DIR/debug/fmlab"

venv="$cache/venv-serve"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q 'openai>=1' 'lm_eval[api]==0.4.13' requests
llama="$cache/venv-llama"
# llama-cpp-python is built for AVX2 (with FMA and F16C), not natively: fmlab follows the
# summation orders of ggml's AVX2 kernels, which are what the recorded references and the
# equality checks below assume. A native build on an AVX-512 CPU sums in other orders
# (its log-likelihoods then differ from the AVX2 build's in the second decimal), and on
# CPUs that list AMX it compiles AMX kernels that these VMs kill at the first tile
# instruction. A venv built otherwise is rebuilt (the marker file says how it was built).
marker="$llama/.built-avx2"
[ -f "$marker" ] || rm -rf "$llama"
if ! "$llama/bin/python" -c 'import llama_cpp, numpy' 2>/dev/null; then
  python3 -m venv "$llama"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" \
    "$llama/bin/pip" install -q --no-cache-dir numpy llama-cpp-python==0.3.36
  touch "$marker"
fi
FMLAB="$fmlab" FMLAB_LLAMA_PYTHON="$llama/bin/python" HF_DATASETS_OFFLINE=1 \
  "$venv/bin/python" scripts/check_serve.py

if [ -x /usr/bin/chromium ]; then
  node_dir="$cache/node"
  if [ ! -d "$node_dir/node_modules/playwright-core" ]; then
    mkdir -p "$node_dir"
    (cd "$node_dir" && npm install --silent --no-audit --no-fund playwright-core@1)
  fi
  log="$(mktemp)"
  "$fmlab" serve "$HOME/.cache/fmlab/models/SmolLM2-135M-Instruct.Q4_1.gguf" --port 0 \
    --alias smollm2 2> "$log" &
  server=$!
  trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
  for _ in $(seq 100); do grep -q 'on http://' "$log" && break; sleep 0.2; done
  addr="$(grep -o 'on http://[0-9.:]*' "$log" | head -1 | sed 's/^on //')"
  node scripts/check_playground.cjs "$addr/" "${SCREENSHOT:-$CARGO_TARGET_DIR/playground.png}"
else
  echo "skipped: the playground check needs Debian's chromium (apt-get install chromium)"
fi
echo "check_serve: all passed"
