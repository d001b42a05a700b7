#!/usr/bin/env python3
"""Attention peer benchmark: `flash bench attention` vs PyTorch SDPA, same shapes, same run.

Runs `flash bench attention --json` (the quick sweep, or --full), then times
torch.nn.functional.scaled_dot_product_attention (CPU, float32, torch.set_num_threads = the same
thread count) on every shape flash measured, the same way: best of up to 5 runs after a warm-up
run, and peak memory as the resident-set high-water mark the call adds (/proc/self/clear_refs
reset, glibc mmap threshold fixed at 128 KiB as in flash). Prints, per shape, flash's
throughput relative to torch and to the standard kernel, and the memory ratios; at N = 8192 the
memory comparison is the headline (`--full` reaches it).

Conventions matched: layout is converted to torch's [B, H, N, D]; causal is bottom-right in
flash, so a causal case with Nq = Nk uses is_causal=True, decode (Nq = 1) sees every key and uses
no mask, and any other Nq != Nk causal case passes an explicit bottom-right boolean mask; GQA uses
enable_gqa=True.

    python3 scripts/bench_attention.py --threads 2 [--full] [--flash .build/release/flash] [--json]
    python3 scripts/bench_attention.py --threads 2 --flash-args '--seq 4096 --head-dim 128 --causal'
"""
import argparse
import ctypes
import json
import os
import shlex
import subprocess
import sys
import time

import bench_json

# PyTorch keeps its own OpenMP wait policy (workers spin at barriers) unless OMP_WAIT_POLICY is
# set: on a loaded machine set OMP_WAIT_POLICY=PASSIVE, or a spinning worker that loses its core
# stalls every op. (Attention's large ops barely notice: within 10% either way on an idle machine.)

import torch
import torch.nn.functional as F


def prepare_memory():
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD, as flash does
    except OSError:
        pass


def rss(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None


def measure_peak(body):
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        reset = False
    before = rss("VmRSS")
    body()
    peak = rss("VmHWM")
    return max(0, peak - before) if reset and before is not None and peak is not None else None


def torch_case(row):
    b, hq, hkv, nq, nk, d = row["batch"], row["heads"], row["kv_heads"], row["seq_q"], row["seq_k"], row["head_dim"]
    backward = row["pass"] == "forward+backward"
    generator = torch.Generator().manual_seed(0)
    q = torch.rand(b, hq, nq, d, generator=generator) * 2 - 1
    k = torch.rand(b, hkv, nk, d, generator=generator) * 2 - 1
    v = torch.rand(b, hkv, nk, d, generator=generator) * 2 - 1
    dout = torch.rand(b, hq, nq, d, generator=generator) * 2 - 1 if backward else None
    mask, is_causal = None, False
    if row["causal"]:
        if nq == nk:
            is_causal = True
        elif nq > 1:
            mask = torch.arange(nk)[None, :] <= torch.arange(nq)[:, None] + nk - nq
    for t in (q, k, v):
        t.requires_grad_(backward)

    def once():
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal, enable_gqa=hq != hkv)
        if backward:
            o.backward(dout)
            for t in (q, k, v):
                t.grad = None

    start = time.perf_counter()
    peak = measure_peak(once)
    best = (time.perf_counter() - start) * 1000
    spent = 0.0
    for _ in range(5):
        if best >= 2000 or spent >= 300:
            break
        start = time.perf_counter()
        once()
        ms = (time.perf_counter() - start) * 1000
        best, spent = min(best, ms), spent + ms
    return dict(impl="torch", ms=best, gflops=row["flops"] / (best * 1e6), peak_bytes=peak)


def key(row):
    return (row["pass"], row["batch"], row["heads"], row["kv_heads"], row["seq_q"], row["seq_k"], row["head_dim"], row["causal"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--full", action="store_true", help="flash's full sweep (N up to 16384)")
    parser.add_argument("--flash", default=".build/release/flash")
    parser.add_argument("--flash-args", default="",
                        help="extra flags for flash bench attention, e.g. a single case: '--seq 4096 --causal --backward'")
    parser.add_argument("--json", nargs="?", const="-", metavar="OUT",
                        help="print the rows as JSON; with OUT, write them with machine, ISA, threads and date there")
    args = parser.parse_args()
    if not os.path.exists(args.flash):
        sys.exit(f"no flash binary at {args.flash}: build with `swift build -c release`")

    command = [args.flash, "bench", "attention", "--json", "--threads", str(args.threads)] + (["--full"] if args.full else []) + shlex.split(args.flash_args)
    print("$ " + " ".join(command), file=sys.stderr, flush=True)
    run = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if run.returncode != 0:
        sys.exit(f"flash bench attention failed with status {run.returncode}")
    flash_rows = json.loads(run.stdout)
    recorder = bench_json.Run("attention", args.flash)

    torch.set_num_threads(args.threads)
    prepare_memory()
    # One-time costs (autograd engine threads, kernel dispatch tables) are paid here, not by the
    # first measured case.
    torch_case(dict(batch=1, heads=2, kv_heads=1, seq_q=64, seq_k=64, head_dim=32, causal=True, flops=1.0,
                    **{"pass": "forward+backward"}))
    shapes = {}
    for row in flash_rows:
        shapes.setdefault(key(row), {})[row["impl"]] = row
    for index, (shape, impls) in enumerate(shapes.items()):
        template = next(iter(impls.values()))
        print(f"[torch {index + 1}/{len(shapes)}] {shape}", file=sys.stderr, flush=True)
        impls["torch"] = torch_case(template)

    if args.json:
        rows = [dict(zip(("pass", "batch", "heads", "kv_heads", "seq_q", "seq_k", "head_dim", "causal"), shape),
                     results=impls) for shape, impls in shapes.items()]
        if args.json == "-":
            print(json.dumps(rows, indent=2))
        else:
            recorder.write(args.json, rows, [args.threads])
        return

    def ms(impls, name):
        row = impls.get(name)
        return row.get("ms") if row else None

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    print(f"ISA of the flash build: {next((row['isa'] for row in flash_rows if 'isa' in row), 'unknown')}")
    print(f"threads={args.threads}; ratios > 1 mean flash is faster / uses less memory")
    fma_peak = next((row["peak_gflops"] for row in flash_rows if row.get("peak_gflops")), None)
    if fma_peak:
        print(f"fp32 FMA peak of the flash build on {args.threads} thread(s): {fma_peak:.1f} GFLOP/s (% peak = flash GF/s / peak; torch % the same for SDPA)")
    header = (f"{'pass':17} {'B':>2} {'H':>3} {'Hkv':>3} {'Nq':>6} {'Nk':>6} {'D':>4} {'causal':>6} {'flash ms':>9} {'std ms':>9} "
              f"{'torch ms':>9} {'flash GF/s':>10} {'% peak':>6} {'torch %':>7} {'vs torch':>8} {'vs std':>7} {'MiB flash':>9} {'MiB std':>8} {'MiB torch':>9}")
    print(header)
    for shape, impls in shapes.items():
        p, b, h, hkv, nq, nk, d, causal = shape
        f_ms, s_ms, t_ms = ms(impls, "flash"), ms(impls, "standard"), ms(impls, "torch")
        peak = lambda name: impls[name]["peak_bytes"] / 2**20 if name in impls and impls[name].get("peak_bytes") is not None else None
        standard_cell = fmt(s_ms, ".2f") if "standard" not in impls or impls["standard"]["status"] == "ok" else "refused"
        print(f"{p:17} {b:2} {h:3} {hkv:3} {nq:6} {nk:6} {d:4} {('yes' if causal else 'no'):>6} {fmt(f_ms, '.2f'):>9} {standard_cell:>9} "
              f"{fmt(t_ms, '.2f'):>9} {fmt(impls.get('flash', {}).get('gflops'), '.1f'):>10} "
              f"{fmt(100 * impls['flash']['fraction_of_peak'] if impls.get('flash', {}).get('fraction_of_peak') else None, '.0f'):>6} "
              f"{fmt(100 * impls['torch']['gflops'] / fma_peak if fma_peak and 'torch' in impls else None, '.0f'):>7} "
              f"{fmt(t_ms / f_ms if f_ms and t_ms else None, '.2f'):>8} {fmt(s_ms / f_ms if f_ms and s_ms else None, '.2f'):>7} "
              f"{fmt(peak('flash'), '.1f'):>9} {fmt(peak('standard'), '.1f'):>8} {fmt(peak('torch'), '.1f'):>9}")
    at8192 = [(shape, impls) for shape, impls in shapes.items() if shape[4] == 8192 and shape[5] == 8192]
    for shape, impls in at8192:
        f_peak = impls.get("flash", {}).get("peak_bytes")
        if f_peak:
            ratios = {name: impls[name]["peak_bytes"] / f_peak for name in ("standard", "torch")
                      if name in impls and impls[name].get("peak_bytes")}
            print(f"memory at N=8192 {shape[0]} D={shape[6]} causal={shape[7]}: "
                  + ", ".join(f"{name}/flash = {ratio:.1f}x" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
