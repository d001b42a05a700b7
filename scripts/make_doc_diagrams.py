#!/usr/bin/env python3
"""The data-flow diagrams of the DocC landing pages, one per library, drawn into each catalog's
Resources folder (Sources/<Module>/<Module>.docc/Resources/<module>-dataflow.svg).

    python3 scripts/make_doc_diagrams.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_benchmarks import ROOT, plt  # noqa: E402  (backend and style)
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

# Per module: boxes {key: (label, x, y, kind)} on a 0–10 × 0–4 canvas, arrows (from, to, label).
# kind: "data" (values that flow), "code" (the module's types that transform them), "other" (another module).
FILL = {"data": "#e8f0fb", "code": "#fde3e1", "other": "#eeeeee"}
EDGE = {"data": "#1f77b4", "code": "#d62728", "other": "#7f7f7f"}
DIAGRAMS = {
    "FlashCore": dict(
        boxes={"values": ("[Float] / file bytes", 1.1, 3.2, "data"),
               "tensor": ("Tensor\n(shape, strides,\nF32/F16/BF16)", 3.6, 3.2, "data"),
               "gemm": ("GEMM\npack A, B → micro-kernel", 6.4, 3.2, "code"),
               "vector": ("VectorMath\nexp, softmax, norms", 3.6, 1.2, "code"),
               "parallel": ("Parallel\nthreads, SpinPool", 6.4, 1.2, "code"),
               "isa": ("VectorISA\nFloatVector", 1.1, 1.2, "code"),
               "out": ("FlashAttention,\nTransformer, …", 9.0, 3.2, "other")},
        arrows=[("values", "tensor", ""), ("tensor", "gemm", "pointers"), ("tensor", "vector", ""),
                ("parallel", "gemm", "column ranges"), ("isa", "vector", "vector width"),
                ("gemm", "out", "")]),
    "FlashAttention": dict(
        boxes={"inputs": ("Q, K, V tensors\n[B, N, H, d]", 1.1, 3.2, "data"),
               "descriptor": ("AttentionDescriptor\nmasks, dropout,\nimplementation", 1.1, 1.2, "data"),
               "problem": ("validated\nproblem", 3.5, 2.2, "code"),
               "flash": ("flash kernels\nK/V tiles → online\nsoftmax (in cache)", 6.2, 3.2, "code"),
               "standard": ("standard kernel\nS, P in memory\n(FlashCore GEMM)", 6.2, 1.2, "code"),
               "out": ("AttentionOutput\nO + log-sum-exp", 8.9, 2.2, "data")},
        arrows=[("inputs", "problem", ""), ("descriptor", "problem", ""), ("problem", "flash", ".flash"),
                ("problem", "standard", ".standard"), ("flash", "out", ""), ("standard", "out", "")]),
    "Transformer": dict(
        boxes={"tokens": ("token ids", 1.0, 3.2, "data"),
               "model": ("TransformerModel /\nLlamaModel / BertModel\nlayers: forward + backward", 4.0, 3.2, "code"),
               "logits": ("logits", 7.0, 3.2, "data"),
               "trainer": ("Trainer\nloss → gradients →\nAdamW step", 4.0, 1.1, "code"),
               "generator": ("Generator + Sampler\nKV cache; appends the\nnext token to the ids", 7.6, 1.1, "code"),
               "attention": ("FlashAttention", 1.0, 1.1, "other")},
        arrows=[("tokens", "model", ""), ("model", "logits", ""), ("logits", "trainer", "targets"),
                ("trainer", "model", "updated weights"), ("logits", "generator", ""),
                ("attention", "model", "each layer")]),
    "ModelFormats": dict(
        boxes={"files": ("files on disk\n.safetensors, .gguf,\ntokenizer.json, vocab.txt", 1.5, 2.3, "data"),
               "safetensors": ("Safetensors\nnamed Tensors", 4.8, 3.4, "code"),
               "gguf": ("GGUFFile\nmetadata, tensor infos,\nQuantizedMatrix", 4.8, 2.0, "code"),
               "tok": ("Tokenizers\nBPE, WordPiece, GGUF, char", 4.8, 0.6, "code"),
               "model": ("Transformer\nmodels", 8.5, 2.7, "other"),
               "ids": ("token ids ⇄ text", 8.5, 0.6, "data")},
        arrows=[("files", "safetensors", ""), ("files", "gguf", ""), ("files", "tok", ""),
                ("safetensors", "model", "weights"), ("gguf", "model", "weights"), ("tok", "ids", "")]),
    "Estimates": dict(
        boxes={"config": ("TransformerConfig /\nModelPreset", 1.2, 3.2, "data"),
               "setup": ("TrainingSetup\nbatch, precision,\noptimizer, parallelism", 1.2, 1.2, "data"),
               "counts": ("ParameterCount\nFLOPCount", 4.4, 3.2, "code"),
               "memory": ("MemoryEstimate\nTrainingEstimate", 4.4, 1.2, "code"),
               "problem": ("AttentionProblem\nFlashTiling", 6.9, 3.2, "data"),
               "io": ("AttentionIO\nbytes, FLOPs", 9.2, 2.2, "code"),
               "hardware": ("Hardware\nroofline time", 6.9, 1.2, "data")},
        arrows=[("config", "counts", ""), ("setup", "memory", ""), ("counts", "memory", ""),
                ("problem", "io", ""), ("hardware", "io", ""), ("hardware", "memory", "")]),
}


def draw(module, spec, path):
    fig, axis = plt.subplots(figsize=(8.0, 3.4))
    axis.set_xlim(-0.4, 10.2)
    axis.set_ylim(0, 4.2)
    axis.axis("off")
    size = {}
    for key, (label, x, y, kind) in spec["boxes"].items():
        lines = label.split("\n")
        width = max(1.6, 0.105 * max(len(line) for line in lines) + 0.3)
        height = 0.28 * len(lines) + 0.3
        size[key] = (x, y, width, height)
        axis.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                                      facecolor=FILL[kind], edgecolor=EDGE[kind], linewidth=1.3))
        axis.text(x, y, label, ha="center", va="center", fontsize=8.5)
    for start, end, label in spec["arrows"]:
        (x0, y0, w0, h0), (x1, y1, w1, h1) = size[start], size[end]

        def edge(x, y, w, h, tx, ty):
            # The point where the line from the box centre towards (tx, ty) leaves the box.
            dx, dy = tx - x, ty - y
            scale = min((w / 2 + 0.08) / abs(dx) if dx else 1e9, (h / 2 + 0.08) / abs(dy) if dy else 1e9)
            return x + dx * scale, y + dy * scale
        p0, p1 = edge(x0, y0, w0, h0, x1, y1), edge(x1, y1, w1, h1, x0, y0)
        axis.add_patch(FancyArrowPatch(p0, p1, arrowstyle="-|>", mutation_scale=12, color="#444444", linewidth=1.1))
        if label:
            axis.text((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2 + 0.12, label, ha="center", va="bottom", fontsize=7.5,
                      color="#444444", bbox=dict(facecolor="white", edgecolor="none", pad=0.5))
    axis.set_title(f"{module}: how data flows", fontsize=11, fontweight="bold")
    fig.tight_layout()
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def main():
    for module, spec in DIAGRAMS.items():
        folder = os.path.join(ROOT, "Sources", module, f"{module}.docc", "Resources")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{module.lower()}-dataflow.svg")
        draw(module, spec, path)
        print(path)


if __name__ == "__main__":
    main()
