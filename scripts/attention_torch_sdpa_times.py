"""PyTorch SDPA (CPU) times for the attention kernels' comparison in BENCHMARKS.md.

Usage: python3 scripts/attention_torch_sdpa_times.py D N CAUSAL(0|1)
Shape [B=1, H=8, N, D], torch.set_num_threads(2); prints the best of 3 wall times and the best of
3 process CPU times (all threads) for the forward and for forward+backward.
"""
import torch, time, sys
torch.set_num_threads(2)
D, N, causal = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
def bench(f, reps, clock):
    f()
    best = 1e9
    for _ in range(reps):
        t = clock(); f(); best = min(best, clock() - t)
    return best
q = torch.randn(1, 8, N, D); k = torch.randn(1, 8, N, D); v = torch.randn(1, 8, N, D)
qg, kg, vg = [x.clone().requires_grad_() for x in (q, k, v)]
def fb():
    o = torch.nn.functional.scaled_dot_product_attention(qg, kg, vg, is_causal=causal)
    o.backward(torch.ones_like(o))
fwd = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
print(f"TORCHWALL D={D} N={N} causal={int(causal)} fwd {bench(fwd,3,time.perf_counter)*1e3:.1f} ms fwd+bwd {bench(fb,3,time.perf_counter)*1e3:.1f} ms")
print(f"TORCHCPU  D={D} N={N} causal={int(causal)} fwd {bench(fwd,3,time.process_time)*1e3:.1f} ms fwd+bwd {bench(fb,3,time.process_time)*1e3:.1f} ms", flush=True)
