#!/usr/bin/env python3
"""Figures of the DocC article "FlashAttention in this engine" (Sources/FlashAttention/FlashAttention.docc).

    python3 scripts/plot_tutorial_figures.py            # redraw from the committed JSON
    python3 scripts/plot_tutorial_figures.py --measure  # first rerun the snippets that make it

The tile drawing and the traffic chart come from the engine itself: the snippets
`Snippets/CausalTileMap.swift` (the flash kernel's tile table and mask tests, through
`Attention.tileMap`) and `Snippets/TrafficVersusModel.swift` (the bytes the kernels count in
their tile loops, next to the IO model in Estimates) print the JSON kept in
docs/figures/data/tiles.json and traffic.json. The memory and time charts are the benchmark
charts of scripts/plot_benchmarks.py, drawn into the catalog too. Prints the SVGs it wrote.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_benchmarks  # noqa: E402  (sets the matplotlib backend and style)
from plot_benchmarks import ROOT, plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

DATA = os.path.join(ROOT, "docs", "figures", "data")
RESOURCES = os.path.join(ROOT, "Sources", "FlashAttention", "FlashAttention.docc", "Resources")
SNIPPETS = {"tiles.json": "CausalTileMap", "traffic.json": "TrafficVersusModel"}
TILE_COLOURS = {"full": "#d62728", "partial": "#ff9f40", "skipped": "#eeeeee"}


def measure(data):
    """Builds and runs the two snippets, keeping the JSON each prints last."""
    for name, snippet in SNIPPETS.items():
        output = subprocess.run(["swift", "run", "-c", "release", snippet], cwd=ROOT, check=True,
                                capture_output=True, text=True).stdout
        start = output.index("{") if name == "tiles.json" else output.index("[{")
        document = json.loads(output[start:])
        with open(os.path.join(data, name), "w") as file:
            json.dump(document, file, indent=1)
            file.write("\n")


def plot_tiles(tiles, out, written):
    panels = (("causal", "causal mask"), ("causal_window_256", "causal + sliding window of 256 keys"))
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 5.0))
    fig.suptitle(f"Which tiles the flash kernel computes: N = {tiles['n']}, d = {tiles['head_dim']}, "
                 f"tiles Br × Bc = {tiles['query_rows']} × {tiles['key_columns']}", fontsize=11.5, fontweight="bold")
    for axis, (key, title) in zip(axes, panels):
        grid = tiles[key]
        for row, line in enumerate(grid):
            for column, cover in enumerate(line):
                axis.add_patch(Rectangle((column, row), 1, 1, facecolor=TILE_COLOURS[cover], edgecolor="white",
                                         linewidth=1.5))
        # The diagonal i = j: causal keeps the logits on and below it.
        size = len(grid)
        axis.plot([0, size], [0, size], color="black", linewidth=0.8, linestyle="--")
        axis.set_xlim(0, len(grid[0]))
        axis.set_ylim(size, 0)
        axis.set_aspect("equal")
        axis.set_xticks([c + 0.5 for c in range(len(grid[0]))], [str(c) for c in range(len(grid[0]))])
        axis.set_yticks([r + 0.5 for r in range(size)], [str(r) for r in range(size)])
        axis.tick_params(length=0)
        for side in ("top", "right", "left", "bottom"):
            axis.spines[side].set_visible(False)
        axis.set_xlabel(f"key tile (Bc = {tiles['key_columns']} keys each)")
        axis.set_ylabel(f"query tile (Br = {tiles['query_rows']} rows each)")
        flat = [cover for line in grid for cover in line]
        computed = sum(cover != "skipped" for cover in flat)
        axis.set_title(f"{title}\n{computed} of {len(flat)} tiles computed", fontsize=10)
    fig.legend(handles=[Patch(color=TILE_COLOURS["full"], label="computed, no mask work"),
                        Patch(color=TILE_COLOURS["partial"], label="computed, masked per element"),
                        Patch(facecolor=TILE_COLOURS["skipped"], edgecolor="#999999", label="skipped: K, V tile never loaded")],
               loc="lower center", ncol=3, fontsize=8.5, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    path = os.path.join(out, "causal-tiles.svg")
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    written.append(path)


def plot_traffic(rows, out, written):
    fig, axis = plt.subplots(figsize=(8.0, 4.2))
    fig.suptitle("Forward main-memory traffic: kernel counters against the IO model", fontsize=12, fontweight="bold")
    fig.text(0.5, 0.855, f"1 head, d = {rows[0]['head_dim']}, Float32, no mask\ncounted: the kernels' tile loops "
             "(Attention.forwardCountingTraffic) · model: Estimates.AttentionIO with the kernel's tile sizes",
             ha="center", fontsize=8.5, color="#555555")
    n = [row["n"] for row in rows]
    mb = 1e6
    for name, colour, label in (("standard", plot_benchmarks.COLOURS["standard"], "standard"),
                                ("flash", plot_benchmarks.COLOURS["flash"], "flash")):
        axis.plot(n, [row[f"{name}_model"] / mb for row in rows], "-", color=colour, label=f"{label}: IO model")
        axis.plot(n, [row[f"{name}_counted"] / mb for row in rows], "o", color=colour, markersize=8,
                  markerfacecolor="none", markeredgewidth=1.8, label=f"{label}: counted by the kernel")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    axis.xaxis.set_major_formatter(plot_benchmarks.matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:.0f}"))
    axis.set_xticks(n)
    axis.set_xlabel("sequence length N")
    axis.set_ylabel("bytes read + written, MB")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8.5)
    fig.tight_layout(rect=(0, 0, 1, 0.84))
    path = os.path.join(out, "traffic-vs-model.svg")
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    written.append(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--out", default=RESOURCES)
    parser.add_argument("--measure", action="store_true", help="rerun the snippets first (needs swift)")
    args = parser.parse_args(argv)
    if args.measure:
        measure(args.data)
    os.makedirs(args.out, exist_ok=True)
    written = []
    with open(os.path.join(args.data, "tiles.json")) as file:
        plot_tiles(json.load(file), args.out, written)
    with open(os.path.join(args.data, "traffic.json")) as file:
        plot_traffic(json.load(file), args.out, written)
    plot_benchmarks.plot_attention(plot_benchmarks.load(args.data, "attention"), args.out, written)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
