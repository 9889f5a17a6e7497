#!/usr/bin/env bash
# Pre-training throughput and peak memory on the reference configuration (6 layers,
# d_model 384, 6 heads, seq 256, batch 8, vocabulary 8192, f32, AdamW):
# fmlab (`fmlab train pretrain --config bench/train/reference.toml`) against the same model
# in PyTorch eager (bench/train/torch_ref.py; fused SDPA attention, and written-out
# attention), side by side, medians of REPS runs.
#
#   REPS=3 STEPS=12 THREADS=2 bash bench/train.sh
#
# PyTorch comes from PyPI into $TORCH_VENV (default ~/.cache/fmlab/torch-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
STEPS=${STEPS:-12}
THREADS=${THREADS:-2}
VENV=${TORCH_VENV:-$HOME/.cache/fmlab/torch-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q torch numpy
fi
cargo build --release -q -p fmlab-cli
FMLAB=${CARGO_TARGET_DIR:-target}/release/fmlab
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$FMLAB" world --seed 1 --size 20MB --out "$work/world" > /dev/null
"$FMLAB" tokenizer train "$work/world/corpus.jsonl" --vocab-size 8192 --out "$work/tok.json" > /dev/null
"$FMLAB" data tokenize "$work/world/corpus.jsonl" --tokenizer "$work/tok.json" --out "$work/shards" > /dev/null

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

fm_tps=(); fm_rss=(); pt_tps=(); pt_rss=(); px_tps=(); px_rss=()
for rep in $(seq "$REPS"); do
  rm -rf "$work/run"
  RAYON_NUM_THREADS=$THREADS /usr/bin/time -v "$FMLAB" train pretrain --shards "$work/shards" \
    --config bench/train/reference.toml --steps "$STEPS" --out "$work/run" --json \
    > "$work/fm.json" 2> "$work/fm.time"
  # Per-step throughput after two warm-up steps, as for PyTorch.
  fm_tps+=("$(python3 -c "
import json, statistics
rows = [json.loads(l) for l in open('$work/run/metrics.jsonl')]
print(statistics.median(r['tokens_per_second'] for r in rows if 'loss' in r and r['step'] > 2))")")
  fm_rss+=("$(awk '/Maximum resident/ {print $6 / 1024}' "$work/fm.time")")
  out=$("$VENV/bin/python" bench/train/torch_ref.py --steps "$STEPS" --threads "$THREADS")
  pt_tps+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])')")
  pt_rss+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mb"])')")
  out=$("$VENV/bin/python" bench/train/torch_ref.py --steps "$STEPS" --threads "$THREADS" --explicit)
  px_tps+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])')")
  px_rss+=("$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peak_rss_mb"])')")
  echo "rep $rep: fmlab ${fm_tps[-1]} tok/s, PyTorch sdpa ${pt_tps[-1]}, explicit ${px_tps[-1]}" >&2
done
fm=$(printf '%s\n' "${fm_tps[@]}" | median); pt=$(printf '%s\n' "${pt_tps[@]}" | median)
px=$(printf '%s\n' "${px_tps[@]}" | median)
fmr=$(printf '%s\n' "${fm_rss[@]}" | median); ptr=$(printf '%s\n' "${pt_rss[@]}" | median)
pxr=$(printf '%s\n' "${px_rss[@]}" | median)
torch_version=$("$VENV/bin/python" -c 'import torch; print(torch.__version__)')
echo
echo "reference config, $THREADS threads, $STEPS steps, median of $REPS (PyTorch $torch_version)"
printf '| %-26s | %12s | %14s | %10s |\n' "trainer" "tokens/s" "peak RSS (MB)" "fmlab ×"
printf '| %-26s | %12.0f | %14.0f | %10s |\n' "fmlab" "$fm" "$fmr" "1.00"
printf '| %-26s | %12.0f | %14.0f | %10.2f |\n' "PyTorch eager, fused SDPA" "$pt" "$ptr" "$(echo "$fm / $pt" | bc -l)"
printf '| %-26s | %12.0f | %14.0f | %10.2f |\n' "PyTorch eager, explicit" "$px" "$pxr" "$(echo "$fm / $px" | bc -l)"
