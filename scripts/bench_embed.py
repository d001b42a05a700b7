#!/usr/bin/env python3
"""Sentence-encoder throughput: `flash bench embed` against sentence-transformers (PyTorch CPU)
on the same 32 sentences, at batch 1 and 32, same thread count, in the same run.

Usage: python3 scripts/bench_embed.py [--threads N] [--seconds S] [--model DIR] [--flash PATH]
Needs: swift build -c release; pip install sentence-transformers; the model from scripts/fetch_models.sh.
Prints one row per batch size with both rates and the ratio flash / sentence-transformers
(> 1 means flash is faster); --json prints the rows as JSON.
"""
import argparse
import json
import os
import subprocess
import time

import bench_json

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("FLASH_MODEL_CACHE", os.path.expanduser("~/.cache/flash-models"))

WORDS = (
    "FlashAttention computes exact attention without materialising the full score matrix. It tiles "
    "queries, keys and values so that each block fits in fast memory, keeps a running maximum and "
    "normaliser for the softmax, and rescales partial outputs as new blocks arrive. Sentence encoders "
    "such as MiniLM turn short texts into vectors whose cosine similarity reflects meaning, which is "
    "useful for search, clustering and deduplication of documents in 2024."
).split(" ")


def sentences():
    """The same list as BenchEmbed.sentences() in Sources/flash/BenchEmbed.swift."""
    return [" ".join(WORDS[(5 * i + j) % len(WORDS)] for j in range(6 + (7 * i) % 30)) for i in range(32)]


def bench_sentence_transformers(model_dir, threads, seconds, batches):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    texts = sentences()
    rates = {}
    with torch.inference_mode():
        for batch in batches:
            def one_pass():
                model.encode(texts, batch_size=batch, show_progress_bar=False, convert_to_numpy=True)

            one_pass()  # warm-up
            best = float("inf")
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                one_pass()
                best = min(best, time.perf_counter() - t0)
                if time.perf_counter() - start >= seconds:
                    break
            rates[batch] = len(texts) / best
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--model", default=os.path.join(CACHE, "all-MiniLM-L6-v2"))
    parser.add_argument("--flash", default=os.path.join(ROOT, ".build", "release", "flash"))
    parser.add_argument("--json", nargs="?", const="-", metavar="OUT",
                        help="print the rows as JSON; with OUT, write them with machine, ISA, threads and date there")
    args = parser.parse_args()
    batches = [1, 32]

    command = [args.flash, "bench", "embed", "--json", "--model", args.model, "--threads", str(args.threads),
               "--seconds", str(args.seconds), "--batch"] + [str(b) for b in batches]
    recorder = bench_json.Run("embed", args.flash)
    flash_rows = json.loads(subprocess.check_output(command))
    flash = {row["batch"]: row["sentences_per_second"] for row in flash_rows}
    isa = next((row["isa"] for row in flash_rows if "isa" in row), "unknown")
    reference = bench_sentence_transformers(args.model, args.threads, args.seconds, batches)

    rows = [{"batch": b, "threads": args.threads, "isa": isa, "flash_sentences_per_second": flash[b],
             "sentence_transformers_sentences_per_second": reference[b], "ratio": flash[b] / reference[b]}
            for b in batches]
    if args.json == "-":
        print(json.dumps(rows))
        return
    if args.json:
        recorder.write(args.json, rows, [args.threads])
    print(f"ISA of the flash build: {isa}")
    print(f"all-MiniLM-L6-v2, 32 sentences of 6-35 words, {args.threads} threads (best pass of ~{args.seconds:g} s)")
    print(f"{'batch':>5} {'flash sent/s':>13} {'s-t sent/s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['batch']:>5} {r['flash_sentences_per_second']:>13.1f} "
              f"{r['sentence_transformers_sentences_per_second']:>11.1f} {r['ratio']:>6.2f}x")


if __name__ == "__main__":
    main()
