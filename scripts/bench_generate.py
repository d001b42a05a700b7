#!/usr/bin/env python3
"""Prefill and decode speed of `flash` against llama.cpp (llama-cpp-python) on the same GGUF, the
same prompt length and the same thread count, in one run; prints both and the ratios.

Usage: python3 scripts/bench_generate.py [--gguf FILE] [--threads N] [--prompt-tokens 512]
                                         [--decode-tokens 64] [--repeats 2] [--rounds 3] [--flash PATH]
Needs llama-cpp-python for the peer numbers: `bash scripts/install_llama_cpp_python.sh` builds it
from PyPI's source for this CPU into ~/.cache/flash-peers/llama-cpp-python (or $FLASH_LLAMA_CPP_PATH),
where this script looks first; an ordinary `pip install llama-cpp-python` works too. Without it
only flash's numbers are printed. To measure the AVX2 path on an AVX-512 machine, compare a
`FLASH_MARCH=x86-64-v3` flash with an AVX2 llama.cpp: `FLASH_PEER_ISA=avx2 bash
scripts/install_llama_cpp_python.sh` builds one into ~/.cache/flash-peers/llama-cpp-python-avx2;
point FLASH_LLAMA_CPP_PATH there.

flash runs through its serving engine (what `flash generate` runs) with its default Float16 KV
cache for GGUF models; llama.cpp's default cache is Float16 as well.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import bench_json

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("FLASH_MODEL_CACHE", os.path.expanduser("~/.cache/flash-models"))
# Where scripts/install_llama_cpp_python.sh puts the peer.
LLAMA_CPP_PATH = os.environ.get("FLASH_LLAMA_CPP_PATH", os.path.expanduser("~/.cache/flash-peers/llama-cpp-python"))
if os.path.isdir(LLAMA_CPP_PATH):
    sys.path.insert(0, LLAMA_CPP_PATH)
# The same text flash's BenchGenerate repeats to build its prompt.
TEXT = ("The history of science is the study of the development of science and scientific knowledge, "
        "including both the natural and social sciences. Science is a body of empirical, theoretical, "
        "and practical knowledge about the natural world, produced by scientists who emphasize the "
        "observation, explanation, and prediction of real-world phenomena. ")


def run_flash(args):
    command = [args.flash, "bench", "generate", "--json", "--gguf", args.gguf, "--threads", str(args.threads),
               "--prompt-tokens", str(args.prompt_tokens), "--decode-tokens", str(args.decode_tokens),
               "--repeats", str(args.repeats)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_llama_cpp(args):
    import llama_cpp
    llama = llama_cpp.Llama(model_path=args.gguf, n_ctx=args.prompt_tokens + args.decode_tokens + 8,
                            n_batch=args.prompt_tokens, n_ubatch=args.prompt_tokens, n_threads=args.threads,
                            n_threads_batch=args.threads, logits_all=False, verbose=False)
    ids = []
    while len(ids) < args.prompt_tokens:
        ids += llama.tokenize(TEXT.encode(), add_bos=False, special=False)
    ids = ids[:args.prompt_tokens]
    vocabulary = llama.n_vocab()
    best_prefill = best_decode = float("inf")
    for _ in range(args.repeats):
        llama.reset()
        start = time.perf_counter()
        llama.eval(ids)
        best_prefill = min(best_prefill, time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(args.decode_tokens):
            last = np.ctypeslib.as_array(llama_cpp.llama_get_logits(llama.ctx), shape=(vocabulary,))
            token = int(last.argmax())
            llama.eval([token])
        best_decode = min(best_decode, time.perf_counter() - start)
    return {"prefill_tokens_per_second": args.prompt_tokens / best_prefill,
            "decode_tokens_per_second": args.decode_tokens / best_decode,
            "threads": args.threads, "version": llama_cpp.__version__}


def best(a, b):
    if a is None:
        return b
    return {**b, "prefill_tokens_per_second": max(a["prefill_tokens_per_second"], b["prefill_tokens_per_second"]),
            "decode_tokens_per_second": max(a["decode_tokens_per_second"], b["decode_tokens_per_second"])}


def write_json(recorder, args, flash, peer):
    row = dict(threads=args.threads, model=os.path.basename(args.gguf), prompt_tokens=args.prompt_tokens,
               decode_tokens=args.decode_tokens, flash=flash, llama_cpp=peer)
    recorder.write(args.json, [row], [args.threads])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", default=os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions inside each round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of flash and llama.cpp")
    parser.add_argument("--flash", default=os.path.join(ROOT, ".build", "release", "flash"))
    parser.add_argument("--json", metavar="OUT", help="also write the results, with machine, ISA, threads and date, to this file")
    args = parser.parse_args()
    recorder = bench_json.Run("generate", args.flash)

    # The two engines alternate for --rounds rounds and each keeps its best round, so that a
    # burst of load on this shared machine does not land on one side only.
    flash = peer = None
    have_peer = True
    for _ in range(args.rounds):
        flash = best(flash, run_flash(args))
        if have_peer:
            try:
                peer = best(peer, run_llama_cpp(args))
            except ImportError:
                have_peer = False
    print(f"ISA of the flash build: {flash.get('isa', 'unknown')}")
    print(f"model {os.path.basename(args.gguf)}, threads {args.threads}, prompt {args.prompt_tokens}, decode {args.decode_tokens}")
    print(f"flash      prefill {flash['prefill_tokens_per_second']:8.1f} tok/s   decode {flash['decode_tokens_per_second']:7.1f} tok/s"
          f"   (serving engine, KV cache {flash.get('kv_cache_type', 'F32')})")
    if not have_peer:
        print("llama.cpp  (llama-cpp-python not installed: bash scripts/install_llama_cpp_python.sh)")
        if args.json:
            write_json(recorder, args, flash, None)
        return
    print(f"llama.cpp  prefill {peer['prefill_tokens_per_second']:8.1f} tok/s   decode {peer['decode_tokens_per_second']:7.1f} tok/s"
          f"   (llama-cpp-python {peer['version']})")
    print(f"ratio      prefill {flash['prefill_tokens_per_second'] / peer['prefill_tokens_per_second']:8.2f}×"
          f"        decode {flash['decode_tokens_per_second'] / peer['decode_tokens_per_second']:7.2f}×"
          f"   (targets: prefill ≥ 1.5×, decode ≥ 1.0×)")
    if args.json:
        write_json(recorder, args, flash, peer)


if __name__ == "__main__":
    sys.exit(main())
