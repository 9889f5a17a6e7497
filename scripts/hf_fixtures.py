"""Tiny random Hugging Face models and their logits: the reference for fmlab's loader of
Hugging Face folders (crates/fmlab-train/tests/it/hf.rs).

Each model (llama, gemma3, gpt2) gets random weights, norms included (so Gemma's
1 + weight convention is exercised), is saved with `save_pretrained` (config.json,
model.safetensors in f32), and its logits on fixed token ids are written to logits.json.

    python scripts/hf_fixtures.py crates/fmlab-train/tests/fixtures/hf

Needs torch and transformers (the PyTorch venv of bench/train.sh plus `pip install
transformers`).
"""

import json
import sys

import torch
import transformers

IDS = [1, 5, 9, 2, 33, 17, 8, 40, 3, 12, 60, 7]


def save(out, name, model):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.2)
    model.eval()
    path = f"{out}/{name}"
    model.save_pretrained(path, safe_serialization=True)
    with torch.no_grad():
        logits = model(torch.tensor([IDS])).logits[0]
    with open(f"{path}/logits.json", "w") as f:
        json.dump(
            {
                "ids": IDS,
                "logits": [[round(x, 7) for x in row] for row in logits.tolist()],
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            f,
        )


def main():
    out = sys.argv[1]
    torch.manual_seed(0)
    llama = transformers.LlamaConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    save(out, "llama", transformers.LlamaForCausalLM(llama))
    gemma = transformers.Gemma3TextConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        query_pre_attn_scalar=16,
        max_position_embeddings=64,
    )
    # Bases other than the defaults, so a loader that ignores them is caught (transformers 5
    # writes them per layer type under `rope_parameters`).
    gemma.rope_parameters = {
        "full_attention": {"rope_type": "default", "rope_theta": 50000.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1000.0},
    }
    save(out, "gemma3", transformers.Gemma3ForCausalLM(gemma))
    gpt2 = transformers.GPT2Config(
        vocab_size=64,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
    )
    save(out, "gpt2", transformers.GPT2LMHeadModel(gpt2))


if __name__ == "__main__":
    main()
