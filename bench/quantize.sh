#!/usr/bin/env bash
# What quantization costs SmolLM2: `fmlab quantize` from the f16 file (itself the reference
# Q4_1 model dequantized) to each type, then each file's size, bits per weight and
# perplexity on the start of the GPL-3 text (its first `CHARS` bytes, default 12000: 2590
# tokens; `fmlab perplexity`, windows of 256 tokens as the reference protocol), printed as
# a Markdown table. `FMLAB=path` uses an existing binary instead of a release build;
# `TYPES="q8_0 q4_0"` picks the types; `TEXT=file` scores another text.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${FMLAB:-}" ]; then
  source "$here/lib.sh"
else
  root="$(cd "$here/.." && pwd)"
fi
bash "$root/scripts/fetch-models.sh"
model="${FMLAB_MODELS_DIR:-$HOME/.cache/fmlab/models}/SmolLM2-135M-Instruct.Q4_1.gguf"
types="${TYPES:-q8_0 q6_k q5_k_m q5_k_s q5_1 q5_0 q4_k_m q4_k_s q4_1 q4_0}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
text="$work/text.txt"
head -c "${CHARS:-12000}" "${TEXT:-$root/../shared/data/ppl/GPL-3.txt}" > "$text"

# The summary line ends "… A → B bits per weight": the input's and the output's.
bits() { sed -E 's/.* ([0-9.]+) → ([0-9.]+) bits per weight$/\1 \2/'; }
read -r model_bpw f16_bpw < <("$FMLAB" quantize "$model" "$work/f16.gguf" --type f16 2>/dev/null | bits)
row() { # name file bits-per-weight
  local ppl size
  ppl=$("$FMLAB" perplexity "$2" "$text" --ctx 256 --json | python3 -c 'import json, sys; print("%.4f" % json.load(sys.stdin)["perplexity"])')
  size=$(stat -c %s "$2")
  printf '| %s | %s | %.1f | %s | %s |\n' "$1" "$size" "$(echo "$size / 1048576" | bc -l)" "$3" "$ppl"
}
echo "| type | bytes | MiB | bits/weight | perplexity |"
echo "|---|---|---|---|---|"
row "Q4_1 (the reference file)" "$model" "$model_bpw"
row f16 "$work/f16.gguf" "$f16_bpw"
for t in $types; do
  read -r _ bpw < <("$FMLAB" quantize "$work/f16.gguf" "$work/$t.gguf" --type "$t" 2>/dev/null | bits)
  row "$t" "$work/$t.gguf" "$bpw"
  rm -f "$work/$t.gguf"
done
