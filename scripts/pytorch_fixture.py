"""Writes fixtures/pytorch/tiny_llama.json: a tiny Llama-shaped decoder in PyTorch (eager,
float32) with fmlab's conventions, its weights, a batch, and the logits, loss and gradients
PyTorch computes -- the reference fmlab-nn's training forward and backward are tested
against.

Conventions (as fmlab_spec::from_depth models train): RMSNorm before each block and at the
end, RoPE on adjacent pairs (2i, 2i+1) with theta_i = pos * base^(-2i/hd), grouped-query
causal attention scaled by 1/sqrt(hd), SwiGLU FFN, untied output head, mean cross-entropy.
Weights are named as GGUF names them and stored row-major [out, in].

    python3 -m venv venv && venv/bin/pip install torch
    venv/bin/python scripts/pytorch_fixture.py
"""

import json
import math
import os

import torch

torch.manual_seed(0)
V, D, L, H, KV, HD, F, T, B = 32, 16, 2, 4, 2, 4, 24, 6, 2
EPS, BASE = 1e-5, 10000.0


def param(*shape, std=0.3):
    return (torch.randn(*shape) * std).requires_grad_()


w = {"token_embd.weight": param(V, D)}
for i in range(L):
    p = f"blk.{i}."
    w[p + "attn_norm.weight"] = (1.0 + 0.1 * torch.randn(D)).requires_grad_()
    w[p + "attn_q.weight"] = param(H * HD, D)
    w[p + "attn_k.weight"] = param(KV * HD, D)
    w[p + "attn_v.weight"] = param(KV * HD, D)
    w[p + "attn_output.weight"] = param(D, H * HD)
    w[p + "ffn_norm.weight"] = (1.0 + 0.1 * torch.randn(D)).requires_grad_()
    w[p + "ffn_gate.weight"] = param(F, D)
    w[p + "ffn_up.weight"] = param(F, D)
    w[p + "ffn_down.weight"] = param(D, F)
w["output_norm.weight"] = (1.0 + 0.1 * torch.randn(D)).requires_grad_()
w["output.weight"] = param(V, D)

inputs = torch.randint(0, V, (B, T))
targets = torch.randint(0, V, (B, T))


def rms_norm(x, weight):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * weight


def rope(x):  # x: [B, T, heads, HD], rotating adjacent pairs
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    inv = BASE ** (-2.0 * torch.arange(HD // 2, dtype=torch.float64) / HD)
    theta = pos * inv[None, :]
    cos = torch.cos(theta).float()[None, :, None, :]
    sin = torch.sin(theta).float()[None, :, None, :]
    a, b = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = a * cos - b * sin
    out[..., 1::2] = a * sin + b * cos
    return out


x = w["token_embd.weight"][inputs]
mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
for i in range(L):
    p = f"blk.{i}."
    h = rms_norm(x, w[p + "attn_norm.weight"])
    q = rope((h @ w[p + "attn_q.weight"].T).view(B, T, H, HD))
    k = rope((h @ w[p + "attn_k.weight"].T).view(B, T, KV, HD))
    v = (h @ w[p + "attn_v.weight"].T).view(B, T, KV, HD)
    k = k.repeat_interleave(H // KV, dim=2)
    v = v.repeat_interleave(H // KV, dim=2)
    s = torch.einsum("bihd,bjhd->bhij", q, k) / math.sqrt(HD)
    s = s.masked_fill(mask, float("-inf"))
    att = torch.einsum("bhij,bjhd->bihd", torch.softmax(s, -1), v).reshape(B, T, H * HD)
    x = x + att @ w[p + "attn_output.weight"].T
    h = rms_norm(x, w[p + "ffn_norm.weight"])
    g = torch.nn.functional.silu(h @ w[p + "ffn_gate.weight"].T) * (h @ w[p + "ffn_up.weight"].T)
    x = x + g @ w[p + "ffn_down.weight"].T
logits = rms_norm(x, w["output_norm.weight"]) @ w["output.weight"].T
loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
loss.backward()

flat = lambda t: [float(v) for v in t.detach().reshape(-1)]
out = {
    "about": "tiny Llama-shaped decoder; see scripts/pytorch_fixture.py",
    "torch": torch.__version__,
    "dims": {"vocab": V, "d_model": D, "layers": L, "heads": H, "kv_heads": KV,
             "head_dim": HD, "ffn": F, "seq": T, "batch": B, "eps": EPS, "rope_base": BASE},
    "inputs": inputs.reshape(-1).tolist(),
    "targets": targets.reshape(-1).tolist(),
    "weights": {k: flat(t) for k, t in w.items()},
    "logits": flat(logits),
    "loss": loss.item(),
    "grads": {k: flat(t.grad) for k, t in w.items()},
}
path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "pytorch", "tiny_llama.json")
with open(path, "w") as f:
    json.dump(out, f)
print(f"{path}: loss {float(loss):.6f}")
