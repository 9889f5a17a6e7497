# Shared helpers for the bench scripts: a release build of fmlab and a median timer.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/fmlab/target}"
cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p fmlab-cli
FMLAB="$CARGO_TARGET_DIR/release/fmlab"
venv="$HOME/.cache/fmlab/bench-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
PY="$venv/bin/python"

# median_seconds N command...: runs the command N times, prints the median wall time.
median_seconds() {
  local n=$1; shift
  local times=()
  for _ in $(seq "$n"); do
    local t0 t1
    t0=$(date +%s%N)
    "$@" > /dev/null
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000 ))")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {printf "%.4f\n", a[int((NR + 1) / 2)] / 1e6}'
}

# llamacpp_bin NAME: the path of llama.cpp's tool NAME (llama-bench, llama-server), built
# once from the llama-cpp-python 0.3.36 sdist (its vendored llama.cpp) with
# -DGGML_NATIVE=ON into ~/.cache/fmlab/llamacpp: every SIMD extension the CPU has, except
# AMX. On CPUs that list AMX (Sapphire/Emerald Rapids) a native build compiles ggml's AMX
# kernels, and the virtual machines here do not let a process use the tile registers
# (its first `tilezero` dies with SIGILL), so AMX is left out with -mno-amx-*; fmlab has
# no AMX path either.
llamacpp_bin() {
  local cache="$HOME/.cache/fmlab/llamacpp"
  local src="$cache/llama_cpp_python-0.3.36/vendor/llama.cpp"
  local bin="$src/build-native/bin/$1"
  local no_amx=""
  grep -qw amx_tile /proc/cpuinfo 2> /dev/null && no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  if [ ! -x "$bin" ]; then
    mkdir -p "$cache"
    "$PY" -m pip install --quiet cmake scikit-build-core
    if [ ! -d "$src" ]; then
      "$PY" -m pip download --quiet --no-deps --no-build-isolation --no-binary llama-cpp-python \
        llama-cpp-python==0.3.36 -d "$cache"
      tar xzf "$cache/llama_cpp_python-0.3.36.tar.gz" -C "$cache"
    fi
    PATH="$(dirname "$PY"):$PATH" cmake -S "$src" -B "$src/build-native" -DCMAKE_BUILD_TYPE=Release \
      -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON \
      -DCMAKE_C_FLAGS="$no_amx" -DCMAKE_CXX_FLAGS="$no_amx" > /dev/null
    PATH="$(dirname "$PY"):$PATH" cmake --build "$src/build-native" -j "$(nproc)" --target "$1" > /dev/null
  fi
  echo "$bin"
}
