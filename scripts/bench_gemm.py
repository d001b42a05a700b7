#!/usr/bin/env python3
"""GEMM: flash vs numpy (OpenBLAS) on the same shapes and thread counts, in one run.

For each thread count (1 and all cores, or --threads), runs `flash bench gemm --json` and then
numpy's matmul in a child process whose BLAS thread count is fixed by environment variables
set before numpy is imported. Prints GFLOP/s, the ratio flash/numpy and flash's % of the fp32
FMA peak that `flash bench gemm` measures.

    python3 scripts/bench_gemm.py            # uses .build/release/flash (builds it if missing)
    python3 scripts/bench_gemm.py --threads 2 --json results.json
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLASH = os.path.join(ROOT, ".build", "release", "flash")


def numpy_worker(cases):
    """Times a @ b for each case; runs in a child whose BLAS threads are set by env vars."""
    import numpy as np

    rng = np.random.default_rng(0)
    results = []
    for case in cases:
        m, n, k = case["m"], case["n"], case["k"]
        # Stored like flash's operands: A is m×k (k×m if transposed), B is k×n (n×k).
        a = rng.uniform(-1, 1, (k, m) if case["transpose_a"] else (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (n, k) if case["transpose_b"] else (k, n)).astype(np.float32)
        op_a = a.T if case["transpose_a"] else a
        op_b = b.T if case["transpose_b"] else b
        out = np.empty((m, n), dtype=np.float32)
        np.matmul(op_a, op_b, out=out)
        start = time.perf_counter()
        np.matmul(op_a, op_b, out=out)
        estimate = max(time.perf_counter() - start, 1e-7)
        repetitions = max(1, int(0.02 / estimate))
        best = float("inf")
        for _ in range(5):
            begin = time.perf_counter()
            for _ in range(repetitions):
                np.matmul(op_a, op_b, out=out)
            best = min(best, (time.perf_counter() - begin) / repetitions)
        results.append(dict(case, gflops=2.0 * m * n * k / best / 1e9, seconds=best))
    return results


def run_numpy(cases, threads):
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    output = subprocess.run([sys.executable, os.path.abspath(__file__), "--numpy-worker"],
                            input=json.dumps(cases), capture_output=True, text=True, env=env, check=True)
    return json.loads(output.stdout)


def run_flash(threads, single):
    if not os.path.exists(FLASH):
        subprocess.run(["swift", "build", "-c", "release", "--product", "flash"], cwd=ROOT, check=True)
    command = [FLASH, "bench", "gemm", "--json", "--threads", str(threads)]
    if single:
        command += ["--m", str(single[0]), "--n", str(single[1]), "--k", str(single[2])]
    output = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="*", help="thread counts (default: 1 and all cores)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("M", "N", "K"), help="one case instead of the set")
    parser.add_argument("--json", help="also write all rows to this file")
    parser.add_argument("--numpy-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.numpy_worker:
        print(json.dumps(numpy_worker(json.load(sys.stdin))))
        return
    cores = os.cpu_count() or 1
    thread_counts = args.threads or ([1, cores] if cores > 1 else [1])
    rows = []
    print(f"{'m':>6} {'n':>6} {'k':>6} op {'threads':>7} {'flash':>8} {'numpy':>8} {'ratio':>6} {'% peak':>7}")
    for threads in thread_counts:
        flash = run_flash(threads, args.shape)
        peak = next(item["peak_gflops"] for item in flash if "peak_gflops" in item)
        cases = [{key: item[key] for key in ("m", "n", "k", "transpose_a", "transpose_b")}
                 for item in flash if "gflops" in item]
        numpy = run_numpy(cases, threads)
        for ours, theirs in zip((item for item in flash if "gflops" in item), numpy):
            op = ("T" if ours["transpose_a"] else "N") + ("T" if ours["transpose_b"] else "N")
            ratio = ours["gflops"] / theirs["gflops"]
            print(f"{ours['m']:>6} {ours['n']:>6} {ours['k']:>6} {op} {threads:>7} {ours['gflops']:>8.1f} "
                  f"{theirs['gflops']:>8.1f} {ratio:>6.2f} {100 * ours['gflops'] / peak:>6.0f}%")
            rows.append(dict(m=ours["m"], n=ours["n"], k=ours["k"], op=op, threads=threads,
                             flash_gflops=ours["gflops"], numpy_gflops=theirs["gflops"], ratio=ratio,
                             peak_gflops=peak))
        print(f"   fp32 FMA peak on {threads} thread(s): {peak:.1f} GFLOP/s")
    if args.json:
        with open(args.json, "w") as file:
            json.dump(rows, file, indent=1)


if __name__ == "__main__":
    main()
