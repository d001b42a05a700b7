#!/usr/bin/env python3
"""Training throughput peer: PyTorch (CPU, float32) vs `flash bench train`, same shapes, same run.

Trains the GPT-2-style architecture of the project's presets in PyTorch — learned positions,
pre-LayerNorm, GELU (tanh), biases, tied embeddings, fused QKV, causal SDPA, AdamW — on random
tokens, and reports tokens/s over `--steps` steps after `--warmup` steps, and the process's peak
resident memory (getrusage ru_maxrss; each preset runs in its own subprocess so the high-water
marks do not mix; PyTorch's own OpenMP wait policy unless OMP_WAIT_POLICY is set, see run_torch). Then runs `flash bench train --json` with the same flags (if the subcommand
exists; it measures both flash and standard attention) and prints flash/torch ratios.

Presets (batch 8 for both; vocabulary from --vocab):
    nanogpt : 6 layers x 6 heads x 384 wide, context 256
    small   : 4 layers x 4 heads x 128 wide, context 128

    python3 scripts/bench_train.py --threads 2 [--presets small,nanogpt] [--steps 10 --warmup 2]
        [--vocab 2048] [--flash .build/release/flash] [--json]

Recipe mode (`--recipe shakespeare`): nanoGPT's CPU recipe for tiny Shakespeare, as its README
gives it (`train.py config/train_shakespeare_char.py --device=cpu --compile=False --block_size=64
--batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000 --lr_decay_iters=2000
--dropout=0.0`): character vocabulary, the first 90% of the characters for training and the last
10% for validation, random windows, no biases, AdamW (β = 0.9, 0.99; decay 0.1 on every 2-D
tensor, embeddings included), linear warm-up over 100 steps then cosine decay from 1e-3 to 1e-4,
gradient clipping at 1. PyTorch runs nanoGPT's model (`--nanogpt DIR` imports model.py from a
nanoGPT checkout; without it, the replica below, which follows model.py) and training loop;
`flash train` runs the same recipe with its flags. Both are timed over the training steps after
the first (evaluation excluded); the final validation loss of each is the mean over
`--eval-batches` batches of 12 validation windows. Each thread count in `--threads 1,2` runs
both, one after the other.

    python3 scripts/bench_train.py --recipe shakespeare --data input.txt --threads 1,2 [--steps 2000]
        [--eval-batches 100] [--seeds 3] [--nanogpt ~/nanoGPT] [--flash .build/release/flash] [--json [OUT]]

One run's validation loss moves by about ±0.01 with the seed (weights and data windows), so
"validation loss no worse" is a claim about means: `--seeds N` runs both N times (seeds 1337…,
or from `--seed S`) and prints the mean losses and the mean difference with its standard error.

The data is tiny Shakespeare (karpathy/char-rnn, data/tinyshakespeare/input.txt, 1 115 394
bytes: the file nanoGPT's data/shakespeare_char/prepare.py downloads).
"""
import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
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


# nanoGPT's tiny-Shakespeare CPU recipe (see the module docstring).
RECIPE = dict(layers=4, heads=4, width=128, context=64, batch=12, lr=1e-3, min_lr=1e-4, warmup=100,
              beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0)


def build_nanogpt(torch, vocab, bias=False):
    """nanoGPT's GPT (model.py) at the recipe's size: pre-LayerNorm blocks without biases, exact
    GELU, causal SDPA, tied embeddings, N(0, 0.02) weights and N(0, 0.02/√(2·layers)) for the
    projections into the residual stream. forward(idx, targets) returns (logits, loss)."""
    nn, F = torch.nn, torch.nn.functional
    layers, heads, width, context = (RECIPE[k] for k in ("layers", "heads", "width", "context"))

    class LayerNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(width))
            self.bias = nn.Parameter(torch.zeros(width)) if bias else None

        def forward(self, x):
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1, self.ln_2 = LayerNorm(), LayerNorm()
            self.c_attn = nn.Linear(width, 3 * width, bias=bias)
            self.attn_proj = nn.Linear(width, width, bias=bias)
            self.c_fc = nn.Linear(width, 4 * width, bias=bias)
            self.mlp_proj = nn.Linear(4 * width, width, bias=bias)

        def forward(self, x):
            b, n, c = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
            q, k, v = (t.view(b, n, heads, c // heads).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0, is_causal=True)
            x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, n, c))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte = nn.Embedding(vocab, width)
            self.wpe = nn.Embedding(context, width)
            self.h = nn.ModuleList(Block() for _ in range(layers))
            self.ln_f = LayerNorm()
            self.lm_head = nn.Linear(width, vocab, bias=False)
            self.wte.weight = self.lm_head.weight
            for module in self.modules():
                if isinstance(module, (nn.Linear, nn.Embedding)):
                    torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
                    if getattr(module, "bias", None) is not None:
                        torch.nn.init.zeros_(module.bias)
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):
                    torch.nn.init.normal_(p, mean=0.0, std=0.02 / (2 * layers) ** 0.5)

        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)

    return GPT()


def shakespeare_tokens(path):
    """nanoGPT's data/shakespeare_char/prepare.py: sorted character vocabulary, 90/10 split."""
    import numpy as np
    with open(path, encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    lookup = {c: i for i, c in enumerate(chars)}
    ids = np.array([lookup[c] for c in text], dtype=np.int64)
    n = int(len(ids) * 0.9)
    return ids[:n], ids[n:], len(chars)


def recipe_worker(args):
    """nanoGPT's train.py loop for the recipe, in this process; prints one JSON line."""
    import math
    import numpy as np
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, validation, vocab = shakespeare_tokens(args.data)
    if args.nanogpt:
        sys.path.insert(0, args.nanogpt)
        from model import GPT, GPTConfig  # nanoGPT's own model.py
        model = GPT(GPTConfig(block_size=RECIPE["context"], vocab_size=vocab, n_layer=RECIPE["layers"],
                              n_head=RECIPE["heads"], n_embd=RECIPE["width"], dropout=0.0, bias=False))
        model_source = os.path.join(args.nanogpt, "model.py")
    else:
        model = build_nanogpt(torch, vocab)
        model_source = "replica in bench_train.py"
    context, batch = RECIPE["context"], RECIPE["batch"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW([{"params": [p for p in params if p.dim() >= 2], "weight_decay": RECIPE["weight_decay"]},
                                   {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}],
                                  lr=RECIPE["lr"], betas=(RECIPE["beta1"], RECIPE["beta2"]))
    train_t, validation_t = torch.from_numpy(train), torch.from_numpy(validation)

    def get_batch(data):
        ix = torch.randint(len(data) - context, (batch,))
        return torch.stack([data[i:i + context] for i in ix]), torch.stack([data[i + 1:i + 1 + context] for i in ix])

    def get_lr(it):
        if it < RECIPE["warmup"]:
            return RECIPE["lr"] * (it + 1) / (RECIPE["warmup"] + 1)
        if it > args.steps:
            return RECIPE["min_lr"]
        ratio = (it - RECIPE["warmup"]) / (args.steps - RECIPE["warmup"])
        return RECIPE["min_lr"] + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (RECIPE["lr"] - RECIPE["min_lr"])

    model.train()
    x, y = get_batch(train_t)
    start = None
    for it in range(args.steps):
        if it == 1:
            start = time.perf_counter()  # the first step (allocation, warm-up) is not timed
            start_cpu = time.process_time()
        for group in optimizer.param_groups:
            group["lr"] = get_lr(it)
        _, loss = model(x, y)
        x, y = get_batch(train_t)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), RECIPE["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        last = loss.item()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    model.eval()
    with torch.no_grad():
        losses = [model(*get_batch(validation_t))[1].item() for _ in range(args.eval_batches)]
    print(json.dumps(dict(impl="torch", model=model_source, threads=args.threads, steps=args.steps,
                          tokens_per_s=(args.steps - 1) * batch * context / elapsed, seconds=elapsed, cpu_seconds=cpu,
                          train_loss=last, val_loss=float(np.mean(losses)), vocab=vocab,
                          params=sum(p.numel() for p in params))))


def run_recipe_torch(threads, seed, args):
    command = [sys.executable, __file__, "--worker", "shakespeare", "--threads", str(threads), "--steps", str(args.steps),
               "--data", args.data, "--eval-batches", str(args.eval_batches), "--seed", str(seed)] \
        + (["--nanogpt", args.nanogpt] if args.nanogpt else [])
    run = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ))
    if run.returncode != 0:
        sys.exit(f"nanoGPT worker failed:\n{run.stderr[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def run_recipe_flash(flash, threads, seed, args):
    """`flash train` with the recipe's flags; the rate comes from its --log lines (steps 2..N)."""
    r = RECIPE
    with tempfile.TemporaryDirectory() as scratch:
        log = os.path.join(scratch, "log.jsonl")
        command = [flash, "train", "--data", args.data, "--layers", str(r["layers"]), "--heads", str(r["heads"]),
                   "--width", str(r["width"]), "--context", str(r["context"]), "--batch", str(r["batch"]),
                   "--steps", str(args.steps), "--lr", str(r["lr"]), "--warmup", str(r["warmup"]), "--dropout", "0",
                   "--no-bias", "--beta1", str(r["beta1"]), "--beta2", str(r["beta2"]), "--weight-decay", str(r["weight_decay"]),
                   "--decay-embeddings", "--grad-clip", str(r["grad_clip"]), "--eval-every", str(args.steps),
                   "--eval-batches", str(args.eval_batches), "--threads", str(threads), "--seed", str(seed),
                   "--out", os.path.join(scratch, "checkpoint"), "--log", log]
        run = subprocess.run(command, capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"`{' '.join(command)}` failed:\n{run.stderr[-2000:]}")
        lines = [json.loads(line) for line in open(log)]
    isa = re.search(r"ISA (\S+)", run.stderr)
    first, last = lines[0], lines[-1]
    elapsed = last["elapsed_seconds"] - first["elapsed_seconds"]
    tokens = (len(lines) - 1) * r["batch"] * r["context"]
    return dict(impl="flash", threads=threads, steps=args.steps, tokens_per_s=tokens / elapsed, seconds=elapsed,
                cpu_seconds=last["cpu_seconds"] - first["cpu_seconds"],
                train_loss=last["train_loss"], val_loss=last["val_loss"], isa=isa.group(1) if isa else "unknown",
                command=" ".join(command[1:]))


def recipe_main(args, flash):
    if not args.data or not os.path.exists(args.data):
        sys.exit("--data: give the path of tiny Shakespeare's input.txt (karpathy/char-rnn data/tinyshakespeare/input.txt)")
    if flash is None:
        sys.exit("no flash binary (build with `swift build -c release`, or pass --flash)")
    recorder = bench_json.Run("train", flash)
    thread_counts = [int(t) for t in str(args.threads).split(",")]
    rows = []
    for threads in thread_counts:
        for seed in range(args.seed, args.seed + args.seeds):
            print(f"[shakespeare, {threads} thread(s), seed {seed}] nanoGPT ({args.steps} steps) ...", file=sys.stderr, flush=True)
            torch_row = run_recipe_torch(threads, seed, args)
            print(f"[shakespeare, {threads} thread(s), seed {seed}] flash train ...", file=sys.stderr, flush=True)
            flash_row = run_recipe_flash(flash, threads, seed, args)
            rows.append(dict(recipe="shakespeare", threads=threads, seed=seed, torch=torch_row, flash=flash_row,
                             ratio=flash_row["tokens_per_s"] / torch_row["tokens_per_s"],
                             cpu_ratio=torch_row["cpu_seconds"] / flash_row["cpu_seconds"]))
    if args.json == "-":
        print(json.dumps(rows, indent=2))
        return
    if args.json:
        recorder.write(args.json, rows, thread_counts, note=f"nanoGPT tiny-Shakespeare recipe, {args.steps} steps")
    print(f"ISA of the flash build: {rows[0]['flash']['isa']}; nanoGPT model: {rows[0]['torch']['model']}")
    print(f"tiny Shakespeare, 4 layers x 4 heads x 128, context 64, batch 12, {args.steps} steps; "
          f"validation loss over {args.eval_batches} batches; ratio = flash/nanoGPT tokens/s (wall clock); "
          f"CPU ratio = nanoGPT/flash CPU seconds for the same steps (all threads; the load-robust figure on a busy machine)")
    print(f"{'threads':>7} {'seed':>5} {'nanoGPT tok/s':>14} {'flash tok/s':>12} {'ratio':>6} {'CPU ratio':>9} {'nanoGPT val':>12} "
          f"{'flash val':>10} {'nanoGPT s':>10} {'flash s':>8} {'nanoGPT CPU s':>14} {'flash CPU s':>12}")
    for row in rows:
        t, f = row["torch"], row["flash"]
        print(f"{row['threads']:7d} {row['seed']:5d} {t['tokens_per_s']:14.0f} {f['tokens_per_s']:12.0f} {row['ratio']:6.2f} "
              f"{row['cpu_ratio']:9.2f} {t['val_loss']:12.4f} {f['val_loss']:10.4f} {t['seconds']:10.1f} {f['seconds']:8.1f} "
              f"{t['cpu_seconds']:14.1f} {f['cpu_seconds']:12.1f}")
    if args.seeds > 1:
        # Over seeds: mean ± sample standard deviation of the validation losses, and their mean
        # difference (flash − nanoGPT) with its standard error, per thread count.
        import statistics
        for threads in thread_counts:
            group = [row for row in rows if row["threads"] == threads]
            t = [row["torch"]["val_loss"] for row in group]
            f = [row["flash"]["val_loss"] for row in group]
            difference = [a - b for a, b in zip(f, t)]
            print(f"{threads} thread(s), {len(group)} seeds: validation nanoGPT {statistics.mean(t):.4f} ± {statistics.stdev(t):.4f}, "
                  f"flash {statistics.mean(f):.4f} ± {statistics.stdev(f):.4f}; flash − nanoGPT "
                  f"{statistics.mean(difference):+.4f} ± {statistics.stdev(difference) / len(group) ** 0.5:.4f} (standard error); "
                  f"ratio {statistics.mean(row['ratio'] for row in group):.2f}")


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
    # PyTorch keeps its own OpenMP wait policy (workers spin at barriers). On a loaded machine a
    # spinning worker that loses its core stalls every op (6-14x slower steps measured here with
    # 2 threads): run with OMP_WAIT_POLICY=PASSIVE there. On an idle machine PASSIVE is no favour to
    # PyTorch: the tiny-Shakespeare recipe ran at 11.7k tokens/s with it against 21.9k without
    # (2 threads, 2026-12-02), so it is not the default.
    env = dict(os.environ)
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
    parser.add_argument("--threads", default=str(os.cpu_count()),
                        help="thread count (recipe mode: a comma-separated list, e.g. 1,2)")
    parser.add_argument("--recipe", choices=["shakespeare"], help="nanoGPT's tiny-Shakespeare CPU recipe instead of the presets")
    parser.add_argument("--data", help="recipe mode: tiny Shakespeare's input.txt")
    parser.add_argument("--eval-batches", type=int, default=100, help="recipe mode: validation batches for the final loss")
    parser.add_argument("--seeds", type=int, default=1,
                        help="recipe mode: runs per thread count with seeds --seed, --seed + 1, … for both (weights, data "
                             "windows); with more than one, the mean validation losses and their difference are printed")
    parser.add_argument("--seed", type=int, default=1337, help="recipe mode: the first seed (default 1337, nanoGPT's)")
    parser.add_argument("--nanogpt", help="recipe mode: a nanoGPT checkout whose model.py to run (default: the replica here)")
    parser.add_argument("--presets", default="small,nanogpt")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; recipe mode: 2000, the recipe's)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--flash", default=None, help="path of the flash binary (default .build/release/flash)")
    parser.add_argument("--json", nargs="?", const="-", metavar="OUT",
                        help="print the rows as JSON; with OUT, write them with machine, ISA, threads and date there")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.steps is None:
        args.steps = 2000 if args.recipe or args.worker == "shakespeare" else 10
    if args.worker == "shakespeare":
        args.threads = int(args.threads)
        recipe_worker(args)
        return
    if args.recipe:
        if args.seeds < 1:
            parser.error(f"--seeds must be ≥ 1, got {args.seeds}")
        if args.steps < 2 or args.steps <= RECIPE["warmup"]:
            parser.error(f"--steps must exceed the recipe's {RECIPE['warmup']} warm-up steps, got {args.steps}")
        recipe_main(args, find_flash(args.flash))
        return
    args.threads = int(args.threads)
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
