#!/usr/bin/env bash
# Cost of sampling. (1) The sampler chain per step over 49k (SmolLM2) and 262k (Gemma 3)
# vocabularies: llama.cpp's default chain, greedy, and the default chain with 5 logprobs
# (median µs over 300 steps, random LM-shaped logits), as a share of each model's decode
# step. (2) Constrained decoding: per-token decode time with a JSON schema against the same
# sampler without one (medians of REPS runs).
source "$(dirname "$0")/lib.sh"
REPS="${REPS:-3}"
THREADS="${THREADS:-2}"
bash "$root/scripts/fetch-models.sh"
models="${FMLAB_MODELS_DIR:-$HOME/.cache/fmlab/models}"
smollm="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
gemma="$models/gemma-3-270m-q4_k_m.gguf"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p fmlab-sample --example chain_cost
chain="$CARGO_TARGET_DIR/release/examples/chain_cost"

# Median decode tokens/s of REPS runs: model, then generate flags.
decode_tps() {
  local model=$1; shift
  local values=()
  for _ in $(seq "$REPS"); do
    values+=("$("$FMLAB" generate "$model" --threads "$THREADS" --json "$@" |
      "$PY" -c "import json,sys; print(json.load(sys.stdin)['decode_tokens_per_second'])")")
  done
  printf '%s\n' "${values[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

echo "== sampler chain per step (median µs) and share of a decode step ($THREADS threads)"
printf '%-10s %8s %-18s %10s %12s %8s\n' model vocab chain µs/step "decode step" share
for pair in "SmolLM2:$smollm:49152" "Gemma3:$gemma:262144"; do
  IFS=: read -r name model vocab <<< "$pair"
  tps=$(decode_tps "$model" --prompt "Once upon a time" --max-tokens 64 --ignore-eos --temperature 0)
  step_us=$("$PY" -c "print(1e6 / $tps)")
  while read -r label v us; do
    printf '%-10s %8s %-18s %10.1f %10.0f µs %7.2f%%\n' "$name" "$v" "$label" "$us" "$step_us" \
      "$("$PY" -c "print(100 * $us / $step_us)")"
  done < <("$chain" "$vocab" 300)
done

echo
echo "== constrained decoding (SmolLM2, JSON schema, temperature 1, seed 1): per-token decode time"
schema="$(mktemp --suffix .json)"
trap 'rm -f "$schema"' EXIT
cat > "$schema" <<'JSON'
{"type": "object", "properties": {"title": {"type": "string"}, "year": {"type": "integer"},
 "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["title", "year", "tags"]}
JSON
common=(--prompt "Describe a film as JSON." --chat --max-tokens 64 --temperature 1 --seed 1)
free=$(decode_tps "$smollm" "${common[@]}" --ignore-eos)
constrained=$(decode_tps "$smollm" "${common[@]}" --json-schema "$schema")
"$PY" - "$free" "$constrained" <<'PY'
import sys
free, con = map(float, sys.argv[1:3])
print(f"unconstrained {free:8.1f} tokens/s  ({1e3 / free:6.2f} ms/token)")
print(f"JSON schema   {con:8.1f} tokens/s  ({1e3 / con:6.2f} ms/token)")
print(f"overhead      {1e3 / con - 1e3 / free:6.2f} ms/token ({100 * (free / con - 1):.0f}%)")
PY
