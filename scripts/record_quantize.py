"""llama.cpp's quantizer on SmolLM2: the reference for `fmlab quantize`
(crates/fmlab-cli/tests/it/quantize.rs), written to fixtures/reference/quantize-smollm2.json.

What it records, per output type: every tensor of the file llama.cpp writes (in file
order) with its ggml type and the SHA-256 of its bytes, the metadata keys in order, and
the SHA-256 of the whole file.

The input of every type is the f16 file fmlab writes from the reference model
(`fmlab quantize SmolLM2-135M-Instruct.Q4_1.gguf smol-f16.gguf --type f16`), whose hash is
recorded too; and llama.cpp's own f16 of the reference model (dequantizing its Q4_1 and
Q8_0 tensors, `allow_requantize`) is recorded as `f16_from_q4_1`, to compare fmlab's f16
conversion with it.

How to run it (llama.cpp from the PyPI sdist of llama-cpp-python 0.3.36, the copy the
other references came from; the build takes ~10 minutes on 2 cores):

    python3 -m venv ~/.cache/fmlab/venv-llama
    ~/.cache/fmlab/venv-llama/bin/pip install llama-cpp-python==0.3.36
    bash scripts/fetch-models.sh
    cargo build -p fmlab-cli
    ~/.cache/fmlab/venv-llama/bin/python scripts/record_quantize.py \
        $CARGO_TARGET_DIR/debug/fmlab fixtures/reference/quantize-smollm2.json
"""

import ctypes
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

import llama_cpp

MODEL = os.path.expanduser("~/.cache/fmlab/models/SmolLM2-135M-Instruct.Q4_1.gguf")

# fmlab's --type name → llama.cpp's llama_ftype.
TYPES = {
    "f32": llama_cpp.LLAMA_FTYPE_ALL_F32,
    "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
    "q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "q4_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0,
    "q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1,
    "q5_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_0,
    "q5_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_1,
    "q4_k_s": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_S,
    "q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
    "q5_k_s": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_S,
    "q5_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "q6_k": llama_cpp.LLAMA_FTYPE_MOSTLY_Q6_K,
}

# ggml type number → (name as ggml prints it, elements per block, bytes per block).
GGML = {
    0: ("f32", 1, 4),
    1: ("f16", 1, 2),
    2: ("q4_0", 32, 18),
    3: ("q4_1", 32, 20),
    6: ("q5_0", 32, 22),
    7: ("q5_1", 32, 24),
    8: ("q8_0", 32, 34),
    12: ("q4_K", 256, 144),
    13: ("q5_K", 256, 176),
    14: ("q6_K", 256, 210),
    30: ("bf16", 1, 2),
}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0]

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos : self.pos + n].decode()
        self.pos += n
        return s

    def value(self, t):
        scalars = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
        if t in scalars:
            return self.take(scalars[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            return [self.value(et) for _ in range(n)]
        raise ValueError(f"value type {t}")


def describe(path):
    """The tensors (file order, each [name, ggml type, SHA-256 of its bytes]), metadata keys
    and whole-file hash of a GGUF file."""
    with open(path, "rb") as f:
        data = f.read()
    r = Reader(data)
    assert r.take("I") == 0x46554747, "not GGUF"
    r.take("I")
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    keys, alignment = [], 32
    for _ in range(n_kv):
        key, t = r.string(), r.take("I")
        v = r.value(t)
        keys.append(key)
        if key == "general.alignment":
            alignment = v
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        dims = [r.take("Q") for _ in range(r.take("I"))]
        t, offset = r.take("I"), r.take("Q")
        infos.append((name, dims, t, offset))
    start = -(-r.pos // alignment) * alignment
    tensors = []
    for name, dims, t, offset in infos:
        tname, block, size = GGML[t]
        n = 1
        for d in dims:
            n *= d
        nbytes = n // block * size
        chunk = data[start + offset : start + offset + nbytes]
        tensors.append([name, tname, hashlib.sha256(chunk).hexdigest()])
    return {
        "file_sha256": hashlib.sha256(data).hexdigest(),
        "file_bytes": len(data),
        "metadata_keys": keys,
        "tensors": tensors,
    }


def quantize(src, dst, ftype, allow_requantize=False):
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = 2
    params.allow_requantize = allow_requantize
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_model_quantize {src} -> {dst} failed ({rc})")


def main():
    fmlab, out = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        f16 = os.path.join(tmp, "input-f16.gguf")
        subprocess.run([fmlab, "quantize", MODEL, f16, "--type", "f16"], check=True)
        input_desc = describe(f16)
        llama_f16 = os.path.join(tmp, "llama-f16.gguf")
        quantize(MODEL, llama_f16, llama_cpp.LLAMA_FTYPE_MOSTLY_F16, allow_requantize=True)
        result = {
            "about": "llama.cpp (llama-cpp-python 0.3.36's vendored copy) llama_model_quantize "
            "on the f16 file fmlab writes from SmolLM2-135M-Instruct.Q4_1.gguf; written by "
            "scripts/record_quantize.py",
            "model": os.path.basename(MODEL),
            "input_f16_sha256": input_desc["file_sha256"],
            "f16_from_q4_1": describe(llama_f16),
            "types": {},
        }
        os.remove(llama_f16)
        for name, ftype in TYPES.items():
            dst = os.path.join(tmp, f"smol-{name}.gguf")
            quantize(f16, dst, ftype)
            result["types"][name] = describe(dst)
            os.remove(dst)
            print(name, result["types"][name]["file_bytes"], file=sys.stderr)
    # One tensor a line: the file stays readable and its diffs small.
    text = json.dumps(result, indent=1)
    text = re.sub(r'\[\n\s*("[^"]*"),\n\s*("[^"]*"),\n\s*("[0-9a-f]{64}")\n\s*\]', r"[\1, \2, \3]", text)
    with open(out, "w") as f:
        f.write(text + "\n")


if __name__ == "__main__":
    main()
