"""Loads an `fmlab export RUN --format safetensors` folder with Hugging Face transformers and
prints its greedy continuation of a prompt as JSON token ids, to compare with
`fmlab generate RUN --prompt ... --temperature 0 --ignore-eos --json`.

    venv/bin/pip install torch transformers
    venv/bin/python scripts/check_hf_export.py run/hf "Kea Jemda was born in" 16
"""

import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

folder, prompt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(folder)
ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
with torch.no_grad():
    out = model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    logits = model(ids).logits[0, -1]
print(json.dumps({
    "prompt_ids": ids[0].tolist(),
    "tokens": out[0, ids.shape[1]:].tolist(),
    "top_logits": torch.topk(logits, 5).indices.tolist(),
}))
