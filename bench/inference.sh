#!/usr/bin/env bash
# Prefill (512 tokens) and decode (128 tokens) speed of fmlab against llama.cpp's
# llama-bench on the same GGUF files, at 1 and 2 threads. llama.cpp is built from the
# llama-cpp-python 0.3.36 sdist (its vendored llama.cpp) with -DGGML_NATIVE=ON, once, into
# ~/.cache/fmlab/llamacpp. Figures are medians of REPS runs; ratios are fmlab / llama.cpp.
source "$(dirname "$0")/lib.sh"
REPS="${REPS:-3}"
bash "$root/scripts/fetch-models.sh"
models="${FMLAB_MODELS_DIR:-$HOME/.cache/fmlab/models}"

# --- llama.cpp -------------------------------------------------------------------------
# LLAMA_BENCH may name an existing llama-bench binary instead.
bench_bin="${LLAMA_BENCH:-$(llamacpp_bin llama-bench)}"

# llama-bench's CSV: n_prompt, n_gen, avg_ts and model_size (bytes of weights) columns.
llama_bench() { # model threads -> "pp512 tg128 model_bytes"
  "$bench_bin" -m "$1" -t "$2" -p 512 -n 128 -r "$REPS" -o csv 2>/dev/null |
    "$PY" -c '
import csv, sys
rows = list(csv.DictReader(sys.stdin))
pp = [float(r["avg_ts"]) for r in rows if r["n_prompt"] == "512"]
tg = [float(r["avg_ts"]) for r in rows if r["n_gen"] == "128"]
print(pp[0], tg[0], rows[0]["model_size"])'
}

# --- fmlab -----------------------------------------------------------------------------
# A prompt of about 512 tokens: a prefix of the GPL text, sized with fmlab's tokenizer.
prompt_for() { # model -> prompt text on stdout
  "$PY" - "$FMLAB" "$1" "$root/../shared/data/ppl/GPL-3.txt" <<'PY'
import json, subprocess, sys
fmlab, model, path = sys.argv[1:4]
text = open(path).read()
lo, hi = 100, len(text)
while lo < hi:
    mid = (lo + hi) // 2
    n = len(json.loads(subprocess.run([fmlab, "tokenize", model, text[:mid], "--json"], capture_output=True, text=True, check=True).stdout)["ids"])
    lo, hi = (mid + 1, hi) if n < 512 else (lo, mid)
sys.stdout.write(text[:lo])
PY
}

fmlab_run() { # model threads prompt max_tokens field -> median of REPS
  local values=()
  for _ in $(seq "$REPS"); do
    values+=("$("$FMLAB" generate "$1" --prompt "$3" --max-tokens "$4" --ignore-eos --temperature 0 --threads "$2" --ctx 1024 --json 2> /dev/null |
      "$PY" -c "import json,sys; print(json.load(sys.stdin)['$5'])")")
  done
  printf '%s\n' "${values[@]}" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

# --- the limits: memory bandwidth and int8 multiply-add rate ---------------------------------
# crates/fmlab-kernels/examples/limits.rs: best of several reads of 1 GiB, and of
# independent int8 dot-product instructions (vpdpbusd on AVX-512 VNNI), on 1 and 2 threads.
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p fmlab-kernels --example limits
declare -A bandwidth int8
for threads in 1 2; do
  while read -r key value; do
    case "$key" in
      bandwidth_gbs) bandwidth[$threads]=$value ;;
      int8_gops) int8[$threads]=$value ;;
    esac
  done < <("$CARGO_TARGET_DIR/release/examples/limits" "$threads")
done

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); SIMD: $(grep -m1 -o -w -E 'avx512_vnni|avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "limits: 1 thread ${bandwidth[1]} GB/s, ${int8[1]} G int8 MAC/s; 2 threads ${bandwidth[2]} GB/s, ${int8[2]} G int8 MAC/s"
echo
printf '%-34s %7s %10s %10s %7s %10s %10s %7s %9s %9s\n' model threads "pp fmlab" "pp llama" ratio "tg fmlab" "tg llama" ratio "pp limit" "tg limit"
for file in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
  model="$models/$file"
  prompt="$(prompt_for "$model")"
  # Prefill's limit: one int8 multiply-add per weight of the layers per token; decode's:
  # every weight byte read once per token.
  macs=$("$FMLAB" inspect "$model" --json | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["parameters_non_embedding"])')
  for threads in 1 2; do
    read -r llama_pp llama_tg model_bytes <<< "$(llama_bench "$model" "$threads")"
    ours_pp=$(fmlab_run "$model" "$threads" "$prompt" 1 prefill_tokens_per_second)
    ours_tg=$(fmlab_run "$model" "$threads" "The" 128 decode_tokens_per_second)
    awk -v m="$file" -v t="$threads" -v a="$ours_pp" -v b="$llama_pp" -v c="$ours_tg" -v d="$llama_tg" \
      -v pl="${int8[$threads]}" -v bw="${bandwidth[$threads]}" -v macs="$macs" -v bytes="$model_bytes" \
      'BEGIN {printf "%-34s %7d %10.1f %10.1f %7.2f %10.1f %10.1f %7.2f %9.0f %9.1f\n", m, t, a, b, a / b, c, d, c / d, pl * 1e9 / macs, bw * 1e9 / bytes}'
  done
done
echo "(pp limit: int8 MAC/s ÷ layer weights; tg limit: read bandwidth ÷ bytes of weights, both tokens/s)"

# --- where decode time goes ---------------------------------------------------------------
if command -v perf > /dev/null; then
  for file in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
    echo
    echo "decode profile, $file, 1 thread, 256 tokens (perf; functions above 2%, loading included):"
    data="$(mktemp)"
    perf record -q -o "$data" "$FMLAB" generate "$models/$file" --prompt "The" \
      --max-tokens 256 --ignore-eos --temperature 0 --threads 1 > /dev/null 2>&1 &&
      perf report -i "$data" --no-children --percent-limit 2 --stdio 2> /dev/null |
      grep -E '^ +[0-9]' | sed -E 's/^ +([0-9.]+%) +[^ ]+ +[^ ]+ +\[.\] /  \1  /' | head -12
    rm -f "$data"
  done
fi

# --- several sequences decoded together --------------------------------------------------
# The server's continuous batching: aggregate decode tokens/s at 1, 8 and 32 sequences
# (crates/fmlab-nn/examples/decode_batch.rs: 32-token prompts, then 64 steps of every
# sequence together; each batch size's steps run as one block, the sizes' order reversing
# between nine rounds; medians), each batch's ratio to one sequence (median of the rounds'
# ratios), and beside it llama.cpp's llama-batched-bench on the same shape (its own prompt
# per sequence, 64 generated tokens each; medians of REPS runs).
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p fmlab-nn --example decode_batch
batched_bin="${LLAMA_BATCHED_BENCH:-$(llamacpp_bin llama-batched-bench)}"
llama_batched() { # model threads -> "1:tokens/s 8:tokens/s 32:tokens/s" (medians of REPS)
  for _ in $(seq "$REPS"); do
    "$batched_bin" -m "$1" -t "$2" -c 4096 -b 2048 -ub 512 -npp 32 -ntg 64 -npl 1,8,32 \
      --output-format jsonl 2> /dev/null
  done | "$PY" -c '
import json, statistics, sys
rates = {}
for line in sys.stdin:
    if line.startswith("{"):
        row = json.loads(line)
        rates.setdefault(row["pl"], []).append(row["speed_tg"])
print(" ".join(f"{pl}:{statistics.median(v):.1f}" for pl, v in sorted(rates.items())))'
}
echo
echo "batched decode (aggregate tokens/s; ratio to one sequence)"
for file in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
  for threads in 1 2; do
    echo "$file, $threads thread(s):"
    ours="$("$CARGO_TARGET_DIR/release/examples/decode_batch" "$models/$file" "$threads" 1 8 32)"
    sed 's/^/  fmlab /' <<< "$ours"
    theirs="$(llama_batched "$models/$file" "$threads")"
    "$PY" - "$theirs" "$ours" <<'PY'
import re, sys
theirs = dict(kv.split(":") for kv in sys.argv[1].split())
ours = {m[0]: float(m[1]) for m in re.findall(r"batch +(\d+): +([\d.]+) tokens/s", sys.argv[2])}
one = float(theirs["1"])
print("  llama.cpp (llama-batched-bench): " + ", ".join(
    f"batch {pl}: {float(v):.1f} ({float(v) / one:.2f}×)" for pl, v in theirs.items()))
print("  fmlab ÷ llama.cpp: " + ", ".join(
    f"batch {pl}: {ours[pl] / float(v):.2f}" for pl, v in theirs.items() if pl in ours))
PY
  done
done
