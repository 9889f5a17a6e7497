#!/usr/bin/env bash
# The real-model recipe: SmolLM2-135M-Instruct adapted with LoRA to the synthetic world's
# conversations on a CPU, judged on the world's held-out questions before and after.
#
#   bash scripts/smollm2_world_sft.sh [OUT]        (STEPS=250 PER_SPLIT=50 by default)
#
# SmolLM2 never saw the world: before, it invents answers about its people; SFT teaches it
# the world's answer formats and to say "I don't know" about people it cannot know. Facts
# asked in the eval are never in the SFT data, so fact accuracy stays near zero — that part
# needs the world's corpus, which only the speedrun's own pre-training has.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/smollm2-world}
STEPS=${STEPS:-250}
PER_SPLIT=${PER_SPLIT:-50}
cargo build --release -q -p fmlab-cli
FMLAB=${CARGO_TARGET_DIR:-target}/release/fmlab
mkdir -p "$OUT"
"$FMLAB" pull smollm2-135m-instruct > /dev/null
[ -f "$OUT/world/sft.jsonl" ] || "$FMLAB" world --seed 3 --size 2MB --out "$OUT/world" > /dev/null
echo "== before" >&2
"$FMLAB" eval chat --model smollm2-135m-instruct --items "$OUT/world/eval.jsonl" \
  --per-split "$PER_SPLIT" | tee "$OUT/before.txt"
echo "== LoRA SFT, $STEPS steps" >&2
rm -rf "$OUT/sft"
start=$(date +%s)
"$FMLAB" train sft --base smollm2-135m-instruct --data "$OUT/world/sft.jsonl" --out "$OUT/sft" \
  --lora-rank 8 --lr 1e-3 --seq-len 256 --batch 4 --steps "$STEPS" --val-fraction 0.01 \
  --eval-every "$STEPS" | tee "$OUT/sft.txt"
echo "training wall time: $(( $(date +%s) - start )) s" | tee -a "$OUT/sft.txt"
echo "== after" >&2
"$FMLAB" eval chat --model "$OUT/sft" --items "$OUT/world/eval.jsonl" \
  --per-split "$PER_SPLIT" | tee "$OUT/after.txt"
