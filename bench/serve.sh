#!/usr/bin/env bash
# Serving throughput: fmlab serve against llama-server (built from the same llama.cpp sdist
# as bench/inference.sh, -DGGML_NATIVE=ON) on the same GGUF, 2 threads each, at 1, 8 and 32
# concurrent streaming clients (bench/serve_load.py: every request generates TOKENS tokens
# after a distinct prompt; llama-server's prompt cache is off). Each server is started with
# as many parallel sequences as there are clients (`--parallel C` / `-np C`, 512 tokens of
# context each). Prints aggregate generated tokens/s, p50/p99 time to first token and
# between tokens, and fmlab / llama-server throughput ratios. Servers alternate per level.
source "$(dirname "$0")/lib.sh"
bash "$root/scripts/fetch-models.sh"
models="${FMLAB_MODELS_DIR:-$HOME/.cache/fmlab/models}"
model="${MODEL:-$models/SmolLM2-135M-Instruct.Q4_1.gguf}"
TOKENS="${TOKENS:-64}"
THREADS="${THREADS:-2}"
server_bin="${LLAMA_SERVER:-$(llamacpp_bin llama-server)}"

port=18431
wait_up() { # url
  for _ in $(seq 300); do curl -sf "$1" > /dev/null 2>&1 && return 0; sleep 0.2; done
  echo "server did not come up: $1" >&2; return 1
}
run_fmlab() { # clients requests
  "$FMLAB" serve "$model" --port $port --parallel "$1" --ctx 512 --threads "$THREADS" \
    --max-queue 256 2> /dev/null &
  local pid=$!
  wait_up "http://127.0.0.1:$port/health"
  python3 "$root/bench/serve_load.py" "127.0.0.1:$port" "$1" "$2" "$TOKENS"
  kill $pid; wait $pid 2> /dev/null || true
}
run_llama() { # clients requests
  "$server_bin" -m "$model" --port $port -np "$1" -c $((512 * $1)) -t "$THREADS" -tb "$THREADS" \
    --no-webui > /dev/null 2>&1 &
  local pid=$!
  wait_up "http://127.0.0.1:$port/health"
  python3 "$root/bench/serve_load.py" "127.0.0.1:$port" "$1" "$2" "$TOKENS" '{"cache_prompt": false}'
  kill $pid; wait $pid 2> /dev/null || true
}

printf '%-8s %-13s %9s %9s %9s %9s %9s\n' clients server "tok/s" "ttft p50" "ttft p99" "tpot p50" "tpot p99"
for level in "1 4" "8 2" "32 1"; do
  set -- $level
  f=$(run_fmlab "$1" "$2")
  l=$(run_llama "$1" "$2")
  python3 "$root/bench/serve_load.py" --row fmlab "$f"
  python3 "$root/bench/serve_load.py" --row llama-server "$l"
  python3 "$root/bench/serve_load.py" --ratio "$f" "$l"
done
