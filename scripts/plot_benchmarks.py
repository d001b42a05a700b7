#!/usr/bin/env python3
"""Charts from benchmark JSON: turns the files the peer scripts write with `--json OUT`
(format: scripts/bench_json.py) into SVG charts.

    python3 scripts/bench_gemm.py --json docs/figures/data/gemm.json
    python3 scripts/bench_attention.py --threads 2 --json docs/figures/data/attention.json
    python3 scripts/bench_train.py --threads 2 --json docs/figures/data/train.json
    python3 scripts/bench_generate.py --threads 2 --json docs/figures/data/generate-2thread.json
    python3 scripts/bench_serve.py --threads 2 --json docs/figures/data/serving.json
    python3 scripts/plot_benchmarks.py [--data docs/figures/data] [--out docs/figures]

Each chart is drawn from every `<benchmark>*.json` file in the data folder (so a sweep can be
added as a second file), and says under its title which machine, ISA, thread count and date
the numbers come from. A benchmark with no file is skipped (serving: `serving*.json` as
scripts/bench_serve.py writes it: rows of {engine, concurrency, tokens_per_second, ttft_ms} and
optionally `rate`, plus an optional `sweep` of {engine, streams, decode_tokens_per_second}).
Prints the SVGs it wrote.
"""
import argparse
import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
# One colour per engine across every chart.
COLOURS = {"flash": "#d62728", "flash (standard attention)": "#ff9896", "standard": "#7f7f7f",
           "numpy": "#1f77b4", "PyTorch": "#1f77b4", "PyTorch SDPA": "#1f77b4", "llama.cpp": "#2ca02c"}
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "svg.hashsalt": "flash", "svg.fonttype": "none",
                     "axes.spines.top": False, "axes.spines.right": False})


def load(data, benchmark):
    """All runs of one benchmark: a list of documents (each with machine, isa, threads, date, rows)."""
    documents = []
    for path in sorted(glob.glob(os.path.join(data, f"{benchmark}*.json"))):
        with open(path) as file:
            document = json.load(file)
        if isinstance(document, list):  # bare rows, as a script prints with a bare --json
            document = dict(benchmark=benchmark, rows=document)
        documents.append(document)
    return documents


def provenance(documents):
    """The line under a chart's title: machine · ISA · threads · date · load."""
    def joined(key, format_one=str):
        values = []
        for document in documents:
            value = document.get(key)
            for item in value if isinstance(value, list) else [value]:
                if item is not None and format_one(item) not in values:
                    values.append(format_one(item))
        return ", ".join(values) or "unknown"
    threads = joined("threads")
    dates = sorted({(document.get("date") or "")[:16] for document in documents} - {""})
    when = (dates[0][:10] + " " + dates[0][11:16] + " UTC") if len(dates) == 1 else " and ".join(sorted({d[:10] for d in dates}))
    parts = [joined("machine"), joined("isa"), f"{threads} thread{'' if threads == '1' else 's'}", when or "date unknown"]
    loads = [value for document in documents for value in (document.get("load_average") or []) if value is not None]
    quiet = any("quiet" in document.get("note", "") for document in documents)
    if loads and max(loads) > 2:
        parts.append(("quiet run + " if quiet else "") + f"machine loaded (load average up to {max(loads):.0f})")
    elif loads:
        parts.append(f"load average ≤ {max(loads):.1f}")
    elif quiet:
        parts.append("quiet run")
    return " · ".join(parts)


def figure(title, documents, panels=1, width=8.0, height=4.2):
    fig, axes = plt.subplots(1, panels, figsize=(width, height), squeeze=False)
    fig.suptitle(title, fontsize=12, fontweight="bold", y=0.99)
    fig.text(0.5, 0.9, provenance(documents), ha="center", fontsize=8.5, color="#555555")
    return fig, list(axes[0])


def save(fig, out, name, written):
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    path = os.path.join(out, name)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    written.append(path)


def plot_gemm(documents, out, written):
    rows = [row for document in documents for row in document["rows"]
            if row["m"] == row["n"] == row["k"] and row["op"] == "NN" and row["m"] >= 256]
    threads = sorted({row["threads"] for row in rows})
    fig, axes = figure("GEMM: single-precision matrix multiply, C = A·B (n×n×n)", documents, len(threads), 8.0, 4.0)
    for axis, count in zip(axes, threads):
        subset = sorted((row for row in rows if row["threads"] == count), key=lambda row: row["m"])
        sizes = [row["m"] for row in subset]
        axis.plot(sizes, [row["flash_gflops"] for row in subset], "o-", color=COLOURS["flash"], label="flash")
        axis.plot(sizes, [row["numpy_gflops"] for row in subset], "s--", color=COLOURS["numpy"], label="numpy (OpenBLAS)")
        peak = max(row["peak_gflops"] for row in subset)
        axis.axhline(peak, color="black", linestyle=":", linewidth=1)
        axis.text(sizes[0], peak * 1.01, f"measured FMA peak {peak:.0f} GFLOP/s", va="bottom", fontsize=8.5)
        axis.set_xscale("log", base=2)
        axis.set_xticks(sizes, [str(size) for size in sizes])
        axis.set_ylim(0, peak * 1.12)
        axis.set_xlabel("matrix size n")
        axis.set_ylabel("GFLOP/s (higher is better)")
        axis.set_title(f"{count} thread{'s' if count > 1 else ''}")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right", fontsize=8.5)
    save(fig, out, "gemm.svg", written)


def attention_series(documents, name, pass_="forward", head_dim=64, with_peer=False):
    """{causal: {impl: [(N, ms, MiB)]}} for B = 1, H = 8 square problems of one pass; `with_peer`:
    only rows where PyTorch ran in the same run (times from different runs do not compare)."""
    series = {}
    for document in documents:
        for row in document["rows"]:
            if with_peer and "torch" not in row["results"]:
                continue
            if (row["pass"] != pass_ or row["head_dim"] != head_dim or row["batch"] != 1 or row["heads"] != 8
                    or row["kv_heads"] != 8 or row["seq_q"] != row["seq_k"]):
                continue
            result = row["results"].get(name)
            if result and result.get("ms") is not None:
                series.setdefault(row["causal"], {}).setdefault(name, []).append(
                    (row["seq_q"], result["ms"], (result.get("peak_bytes") or 0) / MiB))
    for by_impl in series.values():
        for points in by_impl.values():
            points.sort()
    return series


IMPLS = (("flash", "flash (FlashAttention)", "o-"), ("torch", "PyTorch SDPA", "s--"), ("standard", "standard (S, P in memory)", "^:"))


def plot_attention(documents, out, written):
    labels = {"flash": "flash", "torch": "PyTorch SDPA", "standard": "standard"}
    # Time against N, non-causal and causal.
    timed = [document for document in documents if any("torch" in row["results"] for row in document["rows"])]
    fig, axes = figure("Attention forward time, B = 1, H = 8, d = 64", timed, 2, 8.0, 4.0)
    for axis, causal in zip(axes, (False, True)):
        for name, label, style in IMPLS:
            points = attention_series(documents, name, with_peer=True).get(causal, {}).get(name, [])
            if points:
                axis.plot([p[0] for p in points], [p[1] for p in points], style, color=COLOURS[labels[name]], label=label)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:.0f}"))
        axis.set_xlabel("sequence length N")
        axis.set_ylabel("time per call, ms (lower is better)")
        axis.set_title("causal" if causal else "no mask")
        axis.grid(alpha=0.3, which="both")
        axis.legend(fontsize=8.5)
    save(fig, out, "attention_time.svg", written)
    # Peak memory against N.
    fig, axes = figure("Attention forward peak memory, B = 1, H = 8, d = 64, no mask", documents, 1, 8.0, 4.0)
    axis = axes[0]
    for name, label, style in IMPLS:
        points = attention_series(documents, name).get(False, {}).get(name, [])
        if points:
            axis.plot([p[0] for p in points], [p[2] for p in points], style, color=COLOURS[labels[name]], label=label)
            axis.annotate(f"{points[-1][2]:.0f} MiB", (points[-1][0], points[-1][2]), textcoords="offset points",
                          xytext=(6, 0), va="center", fontsize=8.5)
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:.0f}"))
    axis.set_xlabel("sequence length N")
    axis.set_ylabel("peak RSS growth, MiB (lower is better)")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8.5, loc="upper left")
    save(fig, out, "attention_memory.svg", written)


def plot_train(documents, out, written):
    rows = [row for document in documents for row in document["rows"] if row.get("flash")]
    fig, axes = figure("Training a GPT-2-style model: one optimizer step, batch 8, float32", documents, 2, 8.0, 4.0)
    bars = (("PyTorch", lambda row: row["torch"]),
            ("flash", lambda row: row["flash"].get("flash")),
            ("flash (standard attention)", lambda row: row["flash"].get("standard")))
    width = 0.26
    # Bars are relative to PyTorch on the same preset (the two presets differ 7× in speed);
    # each bar is labelled with its absolute value.
    panels = (("speed", "tokens/s relative to PyTorch\n(higher is better)", "tokens/s"),
              ("memory", "peak RSS relative to PyTorch\n(lower is better)", "MiB"))
    for axis, (metric, label, unit) in zip(axes, panels):
        def value(result):
            if metric == "speed":
                return result.get("tokens_per_second", result.get("tokens_per_s"))
            return result["peak_bytes"] / MiB
        for index, (name, pick) in enumerate(bars):
            xs, ys, texts = [], [], []
            for position, row in enumerate(rows):
                result = pick(row)
                if not result:
                    continue
                xs.append(position + (index - 1) * width)
                ys.append(value(result) / value(row["torch"]))
                texts.append(f"{value(result):.0f}")
            drawn = axis.bar(xs, ys, width, color=COLOURS[name], label=name)
            axis.bar_label(drawn, labels=texts, fontsize=7.5, padding=1)
        axis.axhline(1, color="black", linewidth=0.8)
        axis.set_xticks(range(len(rows)), [PRESET_LABELS.get(row["preset"], row["preset"]) for row in rows], fontsize=8.5)
        axis.set_ylabel(label)
        axis.set_title(f"{metric} (bar labels: {unit})", fontsize=10)
        axis.set_ylim(0, max(1.0, max(bar.get_height() for bar in axis.patches)) * 1.45)
        axis.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8, loc="upper left")
    save(fig, out, "training.svg", written)


PRESET_LABELS = {"small": "small\n4 layers × 128, ctx 128", "nanogpt": "nanogpt\n6 layers × 384, ctx 256"}


def plot_generate(documents, out, written):
    rows = sorted((row for document in documents for row in document["rows"]), key=lambda row: row["threads"])
    model = rows[0].get("model", "GGUF model").removesuffix(".gguf").replace(".", " ") if rows else ""
    prompt, steps = (rows[0].get("prompt_tokens"), rows[0].get("decode_tokens")) if rows else (None, None)
    fig, axes = figure(f"GGUF generation, {model}: {prompt}-token prompt, {steps} decode steps", documents, 2, 8.0, 4.0)
    width = 0.38
    for axis, phase in zip(axes, ("prefill", "decode")):
        for index, (name, key) in enumerate((("flash", "flash"), ("llama.cpp", "llama_cpp"))):
            xs, ys = [], []
            for position, row in enumerate(rows):
                if row.get(key):
                    xs.append(position + (index - 0.5) * width)
                    ys.append(row[key][f"{phase}_tokens_per_second"])
            drawn = axis.bar(xs, ys, width, color=COLOURS[name], label=name)
            axis.bar_label(drawn, fmt="%.0f", fontsize=8, padding=1)
        axis.set_xticks(range(len(rows)), [f"{row['threads']} thread{'s' if row['threads'] > 1 else ''}" for row in rows])
        axis.set_ylabel(f"{phase} tokens/s (higher is better)")
        axis.set_title(phase)
        axis.margins(y=0.12)
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=8.5, loc="upper left")
    save(fig, out, "generate.svg", written)


def load_label(row):
    """A load point's label: its Poisson arrival rate (requests/s; None = all at once) when the row
    has one (scripts/bench_serve.py), else its number of concurrent requests."""
    if "rate" not in row:
        return str(row["concurrency"])
    return "all at once" if row["rate"] is None else f"{row['rate']:g}/s"


def load_order(row):
    if "rate" not in row:
        return row["concurrency"]
    return float("inf") if row["rate"] is None else row["rate"]


def plot_serving(documents, out, written):
    """Throughput against median time to first token as load rises, per server; with a batch
    sweep in the JSON (bench_serve.py's `sweep`), a second panel of aggregate decode tokens/s
    against concurrent streams."""
    rows = [row for document in documents for row in document["rows"]]
    sweep = [row for document in documents for row in document.get("sweep") or []
             if row.get("decode_tokens_per_second")]
    by_rate = any("rate" in row for row in rows)
    fig, axes = figure("Serving: throughput against time to first token", documents, 2 if sweep else 1,
                       11.0 if sweep else 8.0, 4.2)
    axis = axes[0]
    for engine in sorted({row["engine"] for row in rows}):
        points = sorted((row for row in rows if row["engine"] == engine and row.get("ttft_ms")), key=load_order)
        axis.plot([p["ttft_ms"] for p in points], [p["tokens_per_second"] for p in points], "o-",
                  color=COLOURS.get(engine), label=engine)
        for p in points:
            axis.annotate(load_label(p), (p["ttft_ms"], p["tokens_per_second"]), textcoords="offset points",
                          xytext=(4, 4), fontsize=8)
    ttfts = [row["ttft_ms"] for row in rows if row.get("ttft_ms")]
    if ttfts and max(ttfts) > 20 * min(ttfts):  # queueing at high load: milliseconds to seconds
        axis.set_xscale("log")
    axis.set_xlabel("time to first token, ms (median)")
    axis.set_ylabel("throughput, generated tokens/s")
    if by_rate:
        caps = sorted({row["concurrency"] for row in rows})
        axis.set_title(f"points labelled with the Poisson arrival rate (requests/s); at most "
                       f"{', '.join(map(str, caps))} in flight", fontsize=9)
    else:
        axis.set_title("points labelled with the number of concurrent requests", fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8.5)
    if sweep:
        axis = axes[1]
        for engine in sorted({row["engine"] for row in sweep}):
            points = sorted((row for row in sweep if row["engine"] == engine), key=lambda row: row["streams"])
            axis.plot([p["streams"] for p in points], [p["decode_tokens_per_second"] for p in points], "o-",
                      color=COLOURS.get(engine), label=engine)
        axis.set_xscale("log", base=2)
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_xticks(sorted({row["streams"] for row in sweep}))
        axis.set_xlabel("concurrent streams")
        axis.set_ylabel("aggregate decode tokens/s")
        axis.set_title("batch sweep: every stream decoding at once", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8.5)
    save(fig, out, "serving.svg", written)


CHARTS = (("gemm", plot_gemm), ("attention", plot_attention), ("train", plot_train),
          ("generate", plot_generate), ("serving", plot_serving))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "docs", "figures", "data"), help="folder of benchmark JSON")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "figures"), help="folder for the SVGs")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    written = []
    for benchmark, plot in CHARTS:
        documents = load(args.data, benchmark)
        if not documents:
            print(f"{benchmark}: no {benchmark}*.json in {args.data}; chart skipped", file=sys.stderr)
            continue
        plot(documents, args.out, written)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
