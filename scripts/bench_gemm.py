#!/usr/bin/env python3
"""GEMM: flash vs numpy (OpenBLAS) on the same shapes and thread counts, in one run.

For each thread count (1 and all cores, or --threads) and each case (the set of
`flash bench gemm`, or --shape), runs `flash bench gemm --json` on that case and then numpy's
matmul in a child process whose BLAS thread count is fixed by environment variables set
before numpy is imported. Interleaving case by case keeps both under the same load on a
shared machine. Prints the vector ISA the flash binary was built for, GFLOP/s, the ratio
flash/numpy and flash's % of the fp32 FMA peak that `flash bench gemm` measures (`FMAPeak`).

    python3 scripts/bench_gemm.py            # uses .build/release/flash (builds it if missing)
    python3 scripts/bench_gemm.py --threads 2 --json results.json
    python3 scripts/bench_gemm.py --cpu-time   # 1-thread rows timed by thread CPU time (shared machine)
    python3 scripts/bench_gemm.py --flash .build-v3/release/flash --shape 2048 384 1536 --shape 2048 1536 384
"""
import argparse
import json
import os
import subprocess
import sys
import time

import bench_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLASH = os.path.join(ROOT, ".build", "release", "flash")
# Environment variables that change which OpenBLAS kernels and blocking numpy gets.
OPENBLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def numpy_worker(cases, cpu_time):
    """Times a @ b for each case; runs in a child whose BLAS threads are set by env vars.
    With cpu_time (1 thread: OpenBLAS then runs on this thread), times by thread CPU time."""
    import numpy as np

    clock = time.thread_time if cpu_time else time.perf_counter

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
        start = clock()
        np.matmul(op_a, op_b, out=out)
        estimate = max(clock() - start, 1e-7)
        repetitions = max(1, int(0.01 / estimate))
        best = float("inf")
        for _ in range(10):
            begin = clock()
            for _ in range(repetitions):
                np.matmul(op_a, op_b, out=out)
            best = min(best, (clock() - begin) / repetitions)
        results.append(dict(case, gflops=2.0 * m * n * k / best / 1e9, seconds=best))
    return results


def run_numpy(cases, threads, cpu_time):
    env = dict(os.environ)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    worker = ["--numpy-worker"] + (["--cpu-time"] if cpu_time else [])
    output = subprocess.run([sys.executable, os.path.abspath(__file__)] + worker,
                            input=json.dumps(cases), capture_output=True, text=True, env=env, check=True)
    return json.loads(output.stdout)


# The default set of `flash bench gemm` (Sources/flash/BenchGEMM.swift): (m, n, k, transpose B).
CASES = [(256, 256, 256, False), (512, 512, 512, False), (1024, 1024, 1024, False),
         (2048, 2048, 2048, False), (64, 64, 64, False), (64, 64, 64, True),
         (128, 1024, 64, False), (1024, 64, 1024, False)]


def run_flash(threads, case, cpu_time):
    if not os.path.exists(FLASH):
        sys.exit(f"no flash binary at {FLASH}: build with `swift build -c release` (or pass --flash)")
    m, n, k, transpose_b = case
    command = [FLASH, "bench", "gemm", "--json", "--threads", str(threads),
               "--m", str(m), "--n", str(n), "--k", str(k)] + (["--transpose-b"] if transpose_b else []) \
        + (["--cpu-time"] if cpu_time else [])
    output = subprocess.run(command, capture_output=True, text=True)
    if output.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{output.stderr.strip()}")
    return json.loads(output.stdout)


def main():
    global FLASH
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="*", help="thread counts (default: 1 and all cores)")
    parser.add_argument("--shape", type=int, nargs=3, metavar=("M", "N", "K"), action="append",
                        help="a case instead of the set (repeatable)")
    parser.add_argument("--transpose-b", action="store_true", help="B stored n×k in the --shape cases")
    parser.add_argument("--flash", default=FLASH, help="the flash binary (default .build/release/flash)")
    parser.add_argument("--json", metavar="OUT", help="also write all rows, with machine, ISA, threads and date, to this file")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time the 1-thread rows by thread CPU time (both sides), leaving out waits for a core")
    parser.add_argument("--numpy-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.numpy_worker:
        print(json.dumps(numpy_worker(json.load(sys.stdin), args.cpu_time)))
        return
    FLASH = args.flash
    cores = os.cpu_count() or 1
    thread_counts = args.threads or ([1, cores] if cores > 1 else [1])
    cases = [tuple(shape) + (args.transpose_b,) for shape in args.shape] if args.shape else CASES
    run = bench_json.Run("gemm", FLASH)
    rows = []
    isa = next((item["isa"] for item in run_flash(1, (8, 8, 8, False), False) if "isa" in item), "unknown")
    print(f"ISA of the flash build: {isa} ({FLASH})")
    tuning = {name: os.environ[name] for name in OPENBLAS_TUNING if name in os.environ}
    if tuning:
        print(f"note: numpy runs with {tuning} (unset them for OpenBLAS's own choice)")
    print(f"{'m':>6} {'n':>6} {'k':>6} op {'threads':>7} {'flash':>8} {'numpy':>8} {'ratio':>6} {'% peak':>7}",
          flush=True)
    for threads in thread_counts:
        cpu_time = args.cpu_time and threads == 1
        block = []
        for case in cases:
            print(f"  running {case[0]}x{case[1]}x{case[2]} on {threads} thread(s)...", file=sys.stderr, flush=True)
            flash = run_flash(threads, case, cpu_time)
            ours = next(item for item in flash if "gflops" in item)
            peak = next(item["peak_gflops"] for item in flash if "peak_gflops" in item)
            theirs = run_numpy([{key: ours[key] for key in ("m", "n", "k", "transpose_a", "transpose_b")}],
                               threads, cpu_time)[0]
            op = ("T" if ours["transpose_a"] else "N") + ("T" if ours["transpose_b"] else "N")
            block.append(dict(m=ours["m"], n=ours["n"], k=ours["k"], op=op, threads=threads, cpu_time=cpu_time, isa=isa,
                              flash_gflops=ours["gflops"], numpy_gflops=theirs["gflops"],
                              ratio=ours["gflops"] / theirs["gflops"], peak_gflops=peak))
        # Each flash run measures the peak; the best of them is the least disturbed by other load.
        peak = max(row["peak_gflops"] for row in block)
        for row in block:
            row["percent_of_peak"] = 100 * row["flash_gflops"] / peak
            print(f"{row['m']:>6} {row['n']:>6} {row['k']:>6} {row['op']} {threads:>7} {row['flash_gflops']:>8.1f} "
                  f"{row['numpy_gflops']:>8.1f} {row['ratio']:>6.2f} {row['percent_of_peak']:>6.0f}%")
        clock = "thread CPU time" if cpu_time else "wall time"
        print(f"   fp32 FMA peak on {threads} thread(s): {peak:.1f} GFLOP/s (best of {len(block)} runs; {clock})",
              flush=True)
        rows += block
    if args.json:
        run.write(args.json, rows, thread_counts)


if __name__ == "__main__":
    main()
