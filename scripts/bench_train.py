#!/usr/bin/env python3
"""Training throughput peer: PyTorch (CPU, float32) vs `flash bench train`, same shapes, same run.

Trains the GPT-2-style architecture of the project's presets in PyTorch — learned positions,
pre-LayerNorm, GELU (tanh), biases, tied embeddings, fused QKV, causal SDPA, AdamW — on random
tokens, and reports tokens/s over `--steps` steps after `--warmup` steps, and the process's peak
resident memory (getrusage ru_maxrss; each preset runs in its own subprocess so the high-water
marks do not mix; OMP_WAIT_POLICY=PASSIVE unless set, see run_torch). Then runs `flash bench train --json` with the same flags (if the subcommand
exists; it measures both flash and standard attention) and prints flash/torch ratios.

Presets (batch 8 for both; vocabulary from --vocab):
    nanogpt : 6 layers x 6 heads x 384 wide, context 256
    small   : 4 layers x 4 heads x 128 wide, context 128

    python3 scripts/bench_train.py --threads 2 [--presets small,nanogpt] [--steps 10 --warmup 2]
        [--vocab 2048] [--flash .build/release/flash] [--json]
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time

import bench_json

PRESETS = {
    "nanogpt": dict(layers=6, heads=6, width=384, context=256, batch=8),
    "small": dict(layers=4, heads=4, width=128, context=128, batch=8),
}


def build_model(torch, layers, heads, width, context, vocab):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv = nn.Linear(width, 3 * width)          # fused QKV, with bias
            self.proj = nn.Linear(width, width)
            self.fc = nn.Linear(width, 4 * width)
            self.fc_out = nn.Linear(4 * width, width)

        def forward(self, x):
            b, n, c = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
            q, k, v = (t.view(b, n, heads, c // heads).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, n, c))
            return x + self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(vocab, width)
            self.positions = nn.Embedding(context, width)
            self.blocks = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = nn.LayerNorm(width)

        def forward(self, idx, targets):
            x = self.tokens(idx) + self.positions(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.ln_f(x) @ self.tokens.weight.T      # tied output head
            return F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1))

    return GPT()


def worker(preset, args):
    """Runs one preset in this process and prints one JSON line."""
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    p = PRESETS[preset]
    model = build_model(torch, p["layers"], p["heads"], p["width"], p["context"], args.vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, weight_decay=0.1)
    data = torch.randint(0, args.vocab, (args.warmup + args.steps, p["batch"], p["context"] + 1))

    def step(i):
        batch = data[i]
        loss = model(batch[:, :-1], batch[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    for i in range(args.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(args.warmup, args.warmup + args.steps):
        loss = step(i)
    elapsed = time.perf_counter() - start
    tokens = args.steps * p["batch"] * p["context"]
    params = sum(t.numel() for t in model.parameters())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps(dict(impl="torch", preset=preset, threads=args.threads, vocab=args.vocab, params=params,
                          steps=args.steps, tokens_per_s=tokens / elapsed, ms_per_step=1000 * elapsed / args.steps,
                          peak_bytes=peak, loss=loss, **p)))


def run_torch(preset, args):
    command = [sys.executable, __file__, "--worker", preset, "--threads", str(args.threads), "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--vocab", str(args.vocab)]
    # PyTorch's OpenMP workers spin at barriers by default; on a shared, loaded machine a spinning
    # worker that loses its core stalls every op (6-14x slower steps measured here with 2 threads).
    # PASSIVE makes them sleep instead, which costs little on an idle machine.
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    run = subprocess.run(command, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        sys.exit(f"torch worker for preset {preset} failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def find_flash(path):
    for candidate in [path, ".build/release/flash", shutil.which("flash")]:
        if candidate and os.path.exists(candidate):
            return candidate
    return None


def run_flash(flash, preset, args):
    """`flash bench train --json` for one preset: {attention: row} (flash and standard attention),
    or None with the reason if unavailable."""
    if flash is None:
        return None, "no flash binary (build with `swift build -c release`)"
    listing = subprocess.run([flash, "bench", "--help"], capture_output=True, text=True).stdout
    if not re.search(r"^\s+train\b", listing, re.MULTILINE):
        return None, "`flash bench train` does not exist in this build"
    command = [flash, "bench", "train", "--json", "--preset", preset, "--threads", str(args.threads),
               "--steps", str(args.steps), "--warmup", str(args.warmup), "--vocab", str(args.vocab)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        return None, f"`{' '.join(command)}` failed: {run.stderr.strip()[-300:]}"
    try:
        result = json.loads(run.stdout)
    except json.JSONDecodeError as error:
        return None, f"flash printed no JSON: {error}"
    rows = result if isinstance(result, list) else [result]
    return {row.get("attention", "flash"): row for row in rows if row.get("preset", preset) == preset}, None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--presets", default="small,nanogpt")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--flash", default=None, help="path of the flash binary (default .build/release/flash)")
    parser.add_argument("--json", nargs="?", const="-", metavar="OUT",
                        help="print the rows as JSON; with OUT, write them with machine, ISA, threads and date there")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args)
        return

    flash = find_flash(args.flash)
    recorder = bench_json.Run("train", flash)
    rows = []
    for preset in args.presets.split(","):
        if preset not in PRESETS:
            parser.error(f"--presets: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        print(f"[{preset}] torch ...", file=sys.stderr, flush=True)
        torch_row = run_torch(preset, args)
        print(f"[{preset}] flash ...", file=sys.stderr, flush=True)
        flash_row, reason = run_flash(flash, preset, args)
        rows.append(dict(preset=preset, torch=torch_row, flash=flash_row, flash_missing=reason))

    if args.json == "-":
        print(json.dumps(rows, indent=2))
        return
    isa = next((f["isa"] for row in rows for f in (row["flash"] or {}).values() if "isa" in f), "unknown")
    if args.json:
        recorder.write(args.json, rows, [args.threads], note=f"steps {args.steps}, warmup {args.warmup}, vocab {args.vocab}")
    print(f"ISA of the flash build: {isa}")
    print(f"threads={args.threads} steps={args.steps} warmup={args.warmup} vocab={args.vocab}; ratio = flash/torch")
    print(f"{'preset':8} {'attention':9} {'torch tok/s':>12} {'flash tok/s':>12} {'ratio':>6} {'torch peak MiB':>15} "
          f"{'flash peak MiB':>15} {'mem ratio':>9}")

    def cell(value, spec):
        return "-" if value is None else format(value, spec)

    for row in rows:
        t = row["torch"]
        for attention, f in (row["flash"] or {"-": {}}).items():
            flash_rate = f.get("tokens_per_second", f.get("tokens_per_s"))
            flash_peak = f.get("peak_bytes")
            print(f"{row['preset']:8} {attention:9} {t['tokens_per_s']:12.0f} {cell(flash_rate, '.0f'):>12} "
                  f"{cell(flash_rate and flash_rate / t['tokens_per_s'], '.2f'):>6} {t['peak_bytes'] / 2**20:15.0f} "
                  f"{cell(flash_peak and flash_peak / 2**20, '.0f'):>15} {cell(flash_peak and flash_peak / t['peak_bytes'], '.2f'):>9}")
        if row["flash_missing"]:
            print(f"  flash: {row['flash_missing']}")


if __name__ == "__main__":
    main()
