#!/usr/bin/env python3
"""Makes Tests/TransformerTests/Fixtures/transformer_<name>.safetensors: a small transformer
built from stock PyTorch modules (nn.Linear, nn.LayerNorm / nn.RMSNorm, F.gelu(tanh),
F.silu, F.scaled_dot_product_attention, torch.optim.AdamW, clip_grad_norm_), with fixed
weights and one batch, and what the Swift model must reproduce:

  param.<name>   every parameter, in the Swift layout (linear weights [in, out])
  tokens, targets  the batch [B, T] (as F32)
  logits [B·T, V], loss [1]
  grad.<name>    every parameter gradient of the mean cross-entropy
  adam_losses [S]  the loss before each of S AdamW steps (lr 1e-2, betas (0.9, 0.95),
                  eps 1e-8, weight decay 0.1 on weight matrices only, clip 1.0)
  final.<name>   parameters after the S steps
metadata "config": the TransformerConfig JSON.

Run: python3 scripts/make_transformer_fixture.py   (PyTorch 2.x CPU; deterministic)
"""
import json, math, os
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "TransformerTests", "Fixtures")

CONFIGS = {
    "gpt2": dict(layers=2, heads=4, kvHeads=4, width=32, mlpWidth=64, context=8, vocabularySize=29,
                 positionEncoding="learned", ropeTheta=10000.0, ropeScaling=1.0, norm="layerNorm",
                 normPlacement="pre", normEpsilon=1e-5, activation="gelu", bias=True,
                 tiedEmbeddings=True, dropout=0.0),
    "llama": dict(layers=2, heads=4, kvHeads=2, width=32, mlpWidth=48, context=8, vocabularySize=29,
                  positionEncoding="rotary", ropeTheta=500.0, ropeScaling=2.0, norm="rmsNorm",
                  normPlacement="pre", normEpsilon=1e-5, activation="swiglu", bias=False,
                  tiedEmbeddings=False, dropout=0.0),
    "postnorm": dict(layers=2, heads=2, kvHeads=1, width=16, mlpWidth=32, context=8, vocabularySize=29,
                     positionEncoding="alibi", ropeTheta=10000.0, ropeScaling=1.0, norm="layerNorm",
                     normPlacement="post", normEpsilon=1e-5, activation="relu", bias=True,
                     tiedEmbeddings=False, dropout=0.0),
}
BATCH, TIME, STEPS = 2, 8, 5


def alibi_slopes(n):
    """The ALiBi paper's reference rule (ofirpress/attention_with_linear_biases)."""
    def power_of_two(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return power_of_two(n)
    closest = 2 ** math.floor(math.log2(n))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: n - closest]


def norm_module(c, cfg):
    if cfg["norm"] == "layerNorm":
        return nn.LayerNorm(c, eps=cfg["normEpsilon"], bias=cfg["bias"])
    return nn.RMSNorm(c, eps=cfg["normEpsilon"])


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, f, h, hkv = cfg["width"], cfg["mlpWidth"], cfg["heads"], cfg["kvHeads"]
        d = c // h
        self.cfg, self.h, self.hkv, self.d = cfg, h, hkv, d
        self.norm1, self.norm2 = norm_module(c, cfg), norm_module(c, cfg)
        self.qkv = nn.Linear(c, (h + 2 * hkv) * d, bias=cfg["bias"])
        self.proj = nn.Linear(c, c, bias=cfg["bias"])
        if cfg["activation"] == "swiglu":
            self.gate = nn.Linear(c, f, bias=cfg["bias"])
        self.up = nn.Linear(c, f, bias=cfg["bias"])
        self.down = nn.Linear(f, c, bias=cfg["bias"])

    def attention(self, x):
        b, t, _ = x.shape
        h, hkv, d = self.h, self.hkv, self.d
        q, k, v = self.qkv(x).split([h * d, hkv * d, hkv * d], dim=-1)
        q = q.view(b, t, h, d).transpose(1, 2)
        k = k.view(b, t, hkv, d).transpose(1, 2)
        v = v.view(b, t, hkv, d).transpose(1, 2)
        if self.cfg["positionEncoding"] == "rotary":
            # Rotate-half convention; angles in float64 as the Swift table.
            pos = torch.arange(t, dtype=torch.float64) / self.cfg["ropeScaling"]
            freq = self.cfg["ropeTheta"] ** (-2 * torch.arange(d // 2, dtype=torch.float64) / d)
            ang = pos[:, None] * freq[None, :]
            cos, sin = ang.cos().float(), ang.sin().float()

            def rot(x):
                a, bb = x[..., : d // 2], x[..., d // 2:]
                return torch.cat([a * cos - bb * sin, bb * cos + a * sin], dim=-1)
            q, k = rot(q), rot(k)
        k = k.repeat_interleave(h // hkv, dim=1)
        v = v.repeat_interleave(h // hkv, dim=1)
        if self.cfg["positionEncoding"] == "alibi":
            i = torch.arange(t)[:, None]
            j = torch.arange(t)[None, :]
            slopes = torch.tensor(alibi_slopes(h))[:, None, None]
            bias = -slopes * (i - j).float()
            bias = bias.masked_fill(j > i, float("-inf"))
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        else:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(o.transpose(1, 2).reshape(b, t, h * d))

    def mlp(self, x):
        a = self.cfg["activation"]
        if a == "swiglu":
            return self.down(F.silu(self.gate(x)) * self.up(x))
        u = self.up(x)
        return self.down(F.gelu(u, approximate="tanh") if a == "gelu" else F.relu(u))

    def forward(self, x):
        if self.cfg["normPlacement"] == "pre":
            x = x + self.attention(self.norm1(x))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.attention(x))
        return self.norm2(x + self.mlp(x))


class Model(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c, v = cfg["width"], cfg["vocabularySize"]
        self.cfg = cfg
        self.tok = nn.Embedding(v, c)
        if cfg["positionEncoding"] == "learned":
            self.pos = nn.Embedding(cfg["context"], c)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["layers"])])
        if cfg["normPlacement"] == "pre":
            self.final = norm_module(c, cfg)
        if not cfg["tiedEmbeddings"]:
            self.head = nn.Linear(c, v, bias=False)

    def forward(self, idx):
        x = self.tok(idx)
        if self.cfg["positionEncoding"] == "learned":
            x = x + self.pos(torch.arange(idx.shape[1]))
        for blk in self.blocks:
            x = blk(x)
        if self.cfg["normPlacement"] == "pre":
            x = self.final(x)
        return x @ self.tok.weight.T if self.cfg["tiedEmbeddings"] else self.head(x)

    def swift_parameters(self):
        """(Swift name, PyTorch parameter, transpose?, kind) in the Swift layout order."""
        out = [("token_embedding", self.tok.weight, False, "embedding")]
        if self.cfg["positionEncoding"] == "learned":
            out.append(("position_embedding", self.pos.weight, False, "embedding"))

        def norm(name, m):
            out.append((name + ".weight", m.weight, False, "norm"))
            if getattr(m, "bias", None) is not None:
                out.append((name + ".bias", m.bias, False, "bias"))

        def lin(name, m):
            out.append((name + ".weight", m.weight, True, "matrix"))
            if m.bias is not None:
                out.append((name + ".bias", m.bias, False, "bias"))
        for i, b in enumerate(self.blocks):
            p = f"layers.{i}."
            norm(p + "norm1", b.norm1)
            lin(p + "attention.qkv", b.qkv)
            lin(p + "attention.proj", b.proj)
            norm(p + "norm2", b.norm2)
            if self.cfg["activation"] == "swiglu":
                lin(p + "mlp.gate", b.gate)
            lin(p + "mlp.up", b.up)
            lin(p + "mlp.down", b.down)
        if self.cfg["normPlacement"] == "pre":
            norm("final_norm", self.final)
        if not self.cfg["tiedEmbeddings"]:
            lin("head", self.head)
        return out


def make(name, cfg, seed):
    torch.manual_seed(seed)
    model = Model(cfg)
    with torch.no_grad():
        for _, p, _, kind in model.swift_parameters():
            if kind == "norm":
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif kind == "bias":
                p.copy_(0.1 * torch.randn_like(p))
            elif kind == "embedding":
                p.copy_(0.5 * torch.randn_like(p))
    params = model.swift_parameters()
    tokens = torch.randint(0, cfg["vocabularySize"], (BATCH, TIME))
    targets = torch.randint(0, cfg["vocabularySize"], (BATCH, TIME))
    tensors = {}

    def swift(p, transpose):
        return (p.detach().T if transpose else p.detach()).contiguous().clone()
    for n, p, tr, _ in params:
        tensors["param." + n] = swift(p, tr)
    tensors["tokens"] = tokens.float()
    tensors["targets"] = targets.float()
    logits = model(tokens).reshape(BATCH * TIME, -1)
    loss = F.cross_entropy(logits, targets.reshape(-1))
    loss.backward()
    tensors["logits"] = logits.detach().clone()
    tensors["loss"] = loss.detach().reshape(1).clone()
    for n, p, tr, _ in params:
        tensors["grad." + n] = swift(p.grad, tr)

    decay = [p for _, p, _, k in params if k == "matrix"]
    rest = [p for _, p, _, k in params if k != "matrix"]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                            lr=1e-2, betas=(0.9, 0.95), eps=1e-8, foreach=False)
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        l = F.cross_entropy(model(tokens).reshape(BATCH * TIME, -1), targets.reshape(-1))
        losses.append(l.item())
        l.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    tensors["adam_losses"] = torch.tensor(losses, dtype=torch.float32)
    for n, p, tr, _ in params:
        tensors["final." + n] = swift(p, tr)
    path = os.path.join(OUT, f"transformer_{name}.safetensors")
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, path, metadata={"config": json.dumps(cfg)})
    print(f"{path}: {os.path.getsize(path)} bytes, loss {loss.item():.6f}, adam losses {[round(x, 5) for x in losses]}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for i, (name, cfg) in enumerate(CONFIGS.items()):
        make(name, cfg, seed=100 + i)
