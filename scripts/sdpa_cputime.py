#!/usr/bin/env python3
"""PyTorch SDPA on one thread, timed by the thread's CPU time (see scripts/attention_cputime.swift).

    ATEN_CPU_CAPABILITY=avx2 python3 scripts/sdpa_cputime.py N D causal(0/1) backward(0/1)

B = 1, H = 8, Float32, best of 5 runs after none; FLOPs as `flash bench attention` counts them.
"""
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
import torch.nn.functional as F

torch.set_num_threads(1)
n, d, causal, backward = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
q, k, v = (torch.rand(1, 8, n, d) * 2 - 1 for _ in range(3))
dout = torch.rand(1, 8, n, d) * 2 - 1
for t in (q, k, v):
    t.requires_grad_(backward)
best = float("inf")
for _ in range(5):
    start = time.thread_time()
    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    if backward:
        o.backward(dout)
        for t in (q, k, v):
            t.grad = None
    best = min(best, time.thread_time() - start)
pairs = n * (n + 1) / 2 if causal else n * n
flops = 4 * 8 * d * pairs * (3.5 if backward else 1)
print(f"SDPA {os.environ.get('ATEN_CPU_CAPABILITY', 'default')} N {n} D {d} causal {int(causal)} backward {int(backward)}: "
      f"{best * 1e3:.2f} ms, {flops / best / 1e9:.1f} GFLOP/s (1 thread, CPU time)")
