"""Runs a GGUF file that fmlab wrote for one of the tiny Hugging Face fixtures
(crates/fmlab-train/tests/fixtures/hf/NAME, random weights, no tokenizer) in llama.cpp and
compares its logits with those `transformers` computed (the fixture's logits.json). This is
the independent check of the GGUF layout fmlab's converter writes — GPT-2's query, key and
value fused as attn_qkv, Llama's permuted rotary rows, Gemma's 1 + w norms — as llama.cpp
reads it. The fixture has no tokenizer, so a placeholder vocabulary of the model's size is
added (ids are fed directly; the tokenizer is never used).

    cargo test -p fmlab-train --test it -- hugging_face_folders   # writes /tmp/fmlab-train-hf-gguf-PID/NAME.gguf
    ~/.cache/fmlab/venv-llama/bin/python scripts/check_gguf_with_llamacpp.py /tmp/fmlab-train-hf-gguf-*/gpt2.gguf gpt2

Needs llama-cpp-python (the venv of scripts/record_quantize.py) and its vendored gguf-py.
"""

import json
import pathlib
import sys
import tempfile

import numpy as np

import llama_cpp

SDIST = pathlib.Path.home() / ".cache/fmlab/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp/gguf-py"
sys.path.insert(0, str(SDIST))
import gguf  # noqa: E402

src, name = sys.argv[1], sys.argv[2]
root = pathlib.Path(__file__).resolve().parent.parent
reference = json.loads((root / f"crates/fmlab-train/tests/fixtures/hf/{name}/logits.json").read_text())
ids = reference["ids"]
want = np.array(reference["logits"], dtype=np.float64)

reader = gguf.GGUFReader(src)
arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
n_vocab = want.shape[1]
out = tempfile.NamedTemporaryFile(suffix=".gguf", delete=False).name
writer = gguf.GGUFWriter(out, arch)
for key, field in reader.fields.items():
    if key.startswith("GGUF.") or key in ("general.architecture",):
        continue
    kind = field.types[0]
    if kind == gguf.GGUFValueType.STRING:
        writer.add_string(key, bytes(field.parts[-1]).decode())
    elif kind == gguf.GGUFValueType.FLOAT32:
        writer.add_float32(key, float(field.parts[-1][0]))
    elif kind == gguf.GGUFValueType.UINT32:
        writer.add_uint32(key, int(field.parts[-1][0]))
    elif kind == gguf.GGUFValueType.BOOL:
        writer.add_bool(key, bool(field.parts[-1][0]))
# A placeholder vocabulary (llama.cpp insists on at least one merge).
writer.add_tokenizer_model("gpt2")
writer.add_tokenizer_pre("default")
writer.add_token_list([f"t{i}" for i in range(n_vocab)])
writer.add_token_types([1] * n_vocab)
writer.add_token_merges(["t 1"])
writer.add_bos_token_id(0)
writer.add_eos_token_id(1)
for t in reader.tensors:
    shape = list(reversed([int(x) for x in t.shape]))
    writer.add_tensor(t.name, np.array(t.data), raw_shape=shape, raw_dtype=t.tensor_type)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()

llm = llama_cpp.Llama(model_path=out, n_ctx=64, logits_all=True, verbose=False, n_threads=1)
llm.eval(ids)
got = np.array(llm.scores[: len(ids)], dtype=np.float64)
worst = float(np.abs(got - want).max())
scale = float(np.abs(want).max())
print(f"{name}: llama.cpp on fmlab's GGUF vs transformers: largest logit difference {worst:.2e} (logits up to {scale:.2f}); argmax agree {int((got.argmax(1) == want.argmax(1)).sum())}/{len(ids)}")
sys.exit(0 if worst < 2e-3 * max(scale, 1.0) else 1)
