"""PyTorch eager side of bench/train.sh: the reference Llama-shaped model (6 layers,
d_model 384, 6 heads of 64, SwiGLU 1024, RMSNorm, RoPE, untied head, vocabulary 8192),
f32, AdamW (fused=False, as eager), batches of 8 x 256 random tokens. Attention through
F.scaled_dot_product_attention (PyTorch's fused CPU kernel) or, with --explicit, written
out. Prints one JSON line: tokens/s (median step after warm-up) and peak RSS."""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=12)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--explicit", action="store_true")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)
V, D, L, H, HD, FF, T, B = 8192, 384, 6, 6, 64, 1024, 256, 8


class RMSNorm(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


pos = torch.arange(T, dtype=torch.float32)[:, None]
inv = 10000.0 ** (-2.0 * torch.arange(HD // 2, dtype=torch.float32) / HD)
COS, SIN = torch.cos(pos * inv), torch.sin(pos * inv)


def rope(x):  # [B, H, T, HD], adjacent pairs
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * COS - b * SIN, a * SIN + b * COS), -1).flatten(-2)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(D), RMSNorm(D)
        self.q = torch.nn.Linear(D, H * HD, bias=False)
        self.k = torch.nn.Linear(D, H * HD, bias=False)
        self.v = torch.nn.Linear(D, H * HD, bias=False)
        self.o = torch.nn.Linear(H * HD, D, bias=False)
        self.gate = torch.nn.Linear(D, FF, bias=False)
        self.up = torch.nn.Linear(D, FF, bias=False)
        self.down = torch.nn.Linear(FF, D, bias=False)

    def forward(self, x):
        h = self.n1(x)
        q = rope(self.q(h).view(B, T, H, HD).transpose(1, 2))
        k = rope(self.k(h).view(B, T, H, HD).transpose(1, 2))
        v = self.v(h).view(B, T, H, HD).transpose(1, 2)
        if args.explicit:
            s = (q @ k.transpose(-1, -2)) / HD**0.5
            s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
            a = torch.softmax(s, -1) @ v
        else:
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, H * HD))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(V, D)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm(D)
        self.head = torch.nn.Linear(D, V, bias=False)

    def forward(self, idx, targets):
        x = self.embed(idx)
        for b in self.blocks:
            x = b(x)
        logits = self.head(self.norm(x))
        return F.cross_entropy(logits.view(-1, V), targets.view(-1))


model = Model()
decay = [p for n, p in model.named_parameters() if p.dim() == 2 and "embed" not in n]
other = [p for n, p in model.named_parameters() if not (p.dim() == 2 and "embed" not in n)]
opt = torch.optim.AdamW(
    [{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
    lr=6e-4, betas=(0.9, 0.95), eps=1e-8, foreach=False,
)
times = []
for step in range(args.steps):
    idx = torch.randint(0, V, (B, T))
    tgt = torch.randint(0, V, (B, T))
    t = time.perf_counter()
    loss = model(idx, tgt)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    times.append(time.perf_counter() - t)
params = sum(p.numel() for p in model.parameters())
print(json.dumps({
    "tokens_per_second": B * T / statistics.median(times[2:]),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "params": params,
    "loss": loss.item(),
    "attention": "explicit" if args.explicit else "sdpa",
}))
