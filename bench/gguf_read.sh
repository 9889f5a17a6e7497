#!/usr/bin/env bash
# Reading a GGUF header and deriving the architecture: `fmlab inspect --json` against the
# `gguf` Python package (llama.cpp's own reader, which memory-maps the file the same way).
source "$(dirname "$0")/lib.sh"
bash "$root/scripts/fetch-models.sh"
models="${FMLAB_MODELS_DIR:-$HOME/.cache/fmlab/models}"
"$PY" -m pip install --quiet gguf numpy
for file in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
  path="$models/$file"
  ours=$(median_seconds 9 "$FMLAB" inspect "$path" --json)
  theirs=$(median_seconds 9 "$PY" -c 'import sys; from gguf import GGUFReader; GGUFReader(sys.argv[1])' "$path")
  python_startup=$(median_seconds 9 "$PY" -c 'import gguf')
  echo "$file: fmlab inspect ${ours}s (whole process), gguf.GGUFReader ${theirs}s (of which ${python_startup}s is importing gguf)"
  awk -v a="$ours" -v b="$theirs" -v s="$python_startup" 'BEGIN {printf "  ratio gguf-py / fmlab: %.1fx (excluding the import: %.1fx)\n", b / a, (b - s) / a}'
done
