#!/usr/bin/env python3
"""Writes Tests/FlashAttentionTests/Fixtures/*.safetensors: attention cases computed by PyTorch.

Each file holds the inputs of `flash attention` (q, k, v [B, N, H, D] float32, and where the case
needs them bias, mask, alibi_slopes, key_lengths, dout) and PyTorch's answers: o, lse and, from
autograd, dq, dk, dv. The options (causal, window, softcap, scale) are in the file's metadata,
spelled like the command's flags.

The reference is computed in float64 from the float32 inputs (so it is the exact answer for the
stored inputs, to ~1e-16), then rounded to float32 for storage. It builds the logits explicitly —
scale·QKᵀ, softcap, ALiBi, bias, then every mask — because our conventions differ from
`scaled_dot_product_attention`'s: the causal mask and windows here are aligned BOTTOM-RIGHT (query i
sits at key position i + Nk − Nq, as in FlashAttention ≥ 2.1), whereas SDPA's `is_causal` is
top-left; and a row with no visible key gives o = 0, lse = −inf here, NaN in SDPA. Wherever SDPA
can express a case (no softcap, no empty rows) the script checks the explicit reference against
`F.scaled_dot_product_attention` with the same mask as an additive float64 `attn_mask` (GQA via
`enable_gqa`) before writing it.

    python3 scripts/make_attention_fixtures.py
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "FlashAttentionTests", "Fixtures")


def visible_mask(b, hq, nq, nk, causal, window, mask, key_lengths):
    i = torch.arange(nq)[:, None] + nk - nq
    j = torch.arange(nk)[None, :]
    keep = torch.ones(b, hq, nq, nk, dtype=torch.bool)
    if causal:
        keep &= j <= i
    if window is not None:
        left, right = window
        if left >= 0:
            keep &= j >= i - left
        if right >= 0:
            keep &= j <= i + right
    if mask is not None:
        keep &= mask.expand(b, hq, nq, nk) != 0
    if key_lengths is not None:
        keep &= j[None, None] < key_lengths.long()[:, None, None, None]
    return keep


def reference(q, k, v, dout, causal=False, window=None, softcap=None, scale=None, alibi=None, bias=None, mask=None,
              key_lengths=None):
    """o, lse, dq, dk, dv in float64. q [B, Nq, Hq, D], k/v [B, Nk, Hkv, D]."""
    b, nq, hq, d = q.shape
    nk, hkv = k.shape[1], k.shape[2]
    scale = 1 / math.sqrt(d) if scale is None else scale
    q, k, v = (t.double().detach().requires_grad_() for t in (q, k, v))
    qh = q.permute(0, 2, 1, 3)
    kh = k.permute(0, 2, 1, 3).repeat_interleave(hq // hkv, dim=1)
    vh = v.permute(0, 2, 1, 3).repeat_interleave(hq // hkv, dim=1)
    s = scale * qh @ kh.transpose(-1, -2)
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)
    distance = (torch.arange(nq)[:, None] + nk - nq - torch.arange(nk)[None, :]).abs().double()
    additive = torch.zeros(b, hq, nq, nk, dtype=torch.float64)
    if alibi is not None:
        additive = additive - alibi.double()[None, :, None, None] * distance
    if bias is not None:
        additive = additive + bias.double()
    keep = visible_mask(b, hq, nq, nk, causal, window, mask, key_lengths) & (additive > -math.inf)
    s = (s + additive).masked_fill(~keep, -math.inf)
    any_visible = keep.any(dim=-1, keepdim=True)
    # Rows with no visible key: softmax of zeros times 0, so o = 0 and no NaN reaches the gradients.
    p = torch.softmax(torch.where(any_visible, s, torch.zeros_like(s)), dim=-1) * any_visible
    o = (p @ vh).permute(0, 2, 1, 3)
    lse = torch.logsumexp(s.detach(), dim=-1)
    o.backward(dout.double())
    if softcap is None and bool(any_visible.all()):
        attn_mask = additive.masked_fill(~keep, -math.inf)
        sdpa = F.scaled_dot_product_attention(
            q.detach().permute(0, 2, 1, 3), k.detach().permute(0, 2, 1, 3), v.detach().permute(0, 2, 1, 3),
            attn_mask=attn_mask, scale=scale, enable_gqa=hq != hkv).permute(0, 2, 1, 3)
        assert torch.allclose(sdpa, o.detach(), atol=1e-12, rtol=1e-10), "explicit reference disagrees with SDPA"
    return o.detach(), lse, q.grad, k.grad, v.grad


def case(name, description, b, nq, nk, hq, hkv, d, seed, logit_gain=1.0, **options):
    generator = torch.Generator().manual_seed(seed)
    randn = lambda *shape: torch.randn(*shape, generator=generator, dtype=torch.float32)
    q = randn(b, nq, hq, d) * logit_gain
    k, v, dout = randn(b, nk, hkv, d), randn(b, nk, hkv, d), randn(b, nq, hq, d)
    tensors = {"q": q, "k": k, "v": v, "dout": dout}
    extras = {}
    if options.pop("with_bias", False):
        extras["bias"] = randn(1, hq, nq, nk)
    if options.pop("with_mask", False):
        mask = (torch.rand(b, 1, nq, nk, generator=generator) < 0.7).float()
        mask[0, 0, 1, :] = 0  # one row sees no key: o = 0, lse = -inf
        extras["mask"] = mask
    if options.pop("with_alibi", False):
        extras["alibi_slopes"] = torch.tensor([2 ** (-8 * (h + 1) / hq) for h in range(hq)], dtype=torch.float32)
    if "key_lengths" in options:
        extras["key_lengths"] = torch.tensor(options.pop("key_lengths"), dtype=torch.float32)
    tensors.update(extras)
    o, lse, dq, dk, dv = reference(
        q, k, v, dout, causal=options.get("causal", False), window=options.get("window"), softcap=options.get("softcap"),
        scale=options.get("scale"), alibi=extras.get("alibi_slopes"), bias=extras.get("bias"), mask=extras.get("mask"),
        key_lengths=extras.get("key_lengths"))
    for out_name, value in [("o", o), ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv)]:
        tensors[out_name] = value.float().contiguous()
    metadata = {"description": description, "causal": "true" if options.get("causal") else "false"}
    if "window" in options:
        metadata["window"] = ",".join(str(x) for x in options["window"])
    for key in ("softcap", "scale"):
        if key in options:
            metadata[key] = repr(float(options[key]))
    save_file({key: value.contiguous() for key, value in tensors.items()}, os.path.join(OUT, name + ".safetensors"), metadata)
    return os.path.getsize(os.path.join(OUT, name + ".safetensors"))


CASES = [
    ("basic", "non-causal, Nq = Nk, default scale", dict(b=2, nq=33, nk=33, hq=2, hkv=2, d=16, seed=1)),
    ("causal_square", "causal, Nq = Nk", dict(b=2, nq=40, nk=40, hq=2, hkv=2, d=16, seed=2, causal=True)),
    ("causal_fewer_queries", "causal bottom-right, Nq < Nk (a chunk of queries after a prefix)",
     dict(b=1, nq=13, nk=45, hq=2, hkv=2, d=16, seed=3, causal=True)),
    ("causal_more_queries", "causal bottom-right, Nq > Nk: the first Nq - Nk rows see no key",
     dict(b=1, nq=45, nk=13, hq=2, hkv=2, d=16, seed=4, causal=True)),
    ("gqa_causal", "grouped-query: 4 query heads over 2 kv heads, causal",
     dict(b=2, nq=30, nk=30, hq=4, hkv=2, d=16, seed=5, causal=True)),
    ("mqa", "multi-query: 4 query heads over 1 kv head, Nq != Nk",
     dict(b=1, nq=20, nk=37, hq=4, hkv=1, d=16, seed=6)),
    ("bias", "additive bias [1, H, Nq, Nk] broadcast over the batch",
     dict(b=2, nq=24, nk=31, hq=2, hkv=2, d=16, seed=7, with_bias=True)),
    ("mask", "boolean keep-mask [B, 1, Nq, Nk], one row fully masked",
     dict(b=2, nq=24, nk=31, hq=2, hkv=2, d=16, seed=8, with_mask=True)),
    ("softcap", "soft-capped logits (cap 5; large logits so the cap bites)",
     dict(b=1, nq=28, nk=28, hq=2, hkv=2, d=16, seed=9, logit_gain=6.0, softcap=5.0)),
    ("alibi_causal", "ALiBi slopes 2^(-8(h+1)/H), causal",
     dict(b=1, nq=32, nk=32, hq=4, hkv=4, d=16, seed=10, causal=True, with_alibi=True)),
    ("window", "sliding window 5 left, 3 right, non-causal, Nq != Nk",
     dict(b=1, nq=30, nk=36, hq=2, hkv=2, d=16, seed=11, window=(5, 3))),
    ("window_causal", "sliding window 8 left with the causal mask",
     dict(b=1, nq=40, nk=40, hq=2, hkv=2, d=16, seed=12, causal=True, window=(8, -1))),
    ("scale", "explicit scale 0.3", dict(b=1, nq=17, nk=23, hq=2, hkv=2, d=16, seed=13, scale=0.3)),
    ("key_lengths", "padding: 20 and 33 valid keys in a batch of two",
     dict(b=2, nq=16, nk=33, hq=2, hkv=2, d=16, seed=14, key_lengths=[20, 33])),
    ("long_causal", "longer than one tile: N = 200, causal",
     dict(b=1, nq=200, nk=200, hq=1, hkv=1, d=16, seed=15, causal=True)),
    ("head_dim_128", "head dimension 128", dict(b=1, nq=12, nk=20, hq=2, hkv=1, d=128, seed=16)),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    total = 0
    for name, description, arguments in CASES:
        size = case(name, description, **arguments)
        total += size
        print(f"{name:22} {size:8} bytes  {description}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
