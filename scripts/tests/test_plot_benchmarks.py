"""The chart script on the committed sample JSON (docs/figures/data): every chart is written and
is a non-empty SVG that names its axes; the serving chart appears only when serving JSON exists.
Needs matplotlib and pytest (.ci/run installs them); never runs a benchmark."""
import json
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ElementTree

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import plot_benchmarks  # noqa: E402

DATA = os.path.join(plot_benchmarks.ROOT, "docs", "figures", "data")
EXPECTED = ["gemm.svg", "attention_time.svg", "attention_memory.svg", "training.svg", "generate.svg", "serving.svg"]


def check_svg(path, must_contain, dated=True):
    assert os.path.getsize(path) > 5000, f"{path} is (nearly) empty"
    root = ElementTree.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(root.itertext())
    for words in must_contain:
        assert words in text, f"{os.path.basename(path)} lacks {words!r}"
    assert not dated or re.search(r"20\d\d-\d\d-\d\d", text), f"{os.path.basename(path)} names no date"


def test_every_chart_from_sample_data(tmp_path):
    written = plot_benchmarks.main(["--data", DATA, "--out", str(tmp_path)])
    assert sorted(os.path.basename(path) for path in written) == sorted(EXPECTED)
    labels = {"gemm.svg": ["GFLOP/s", "matrix size n", "numpy", "peak"],
              "attention_time.svg": ["ms", "sequence length N", "PyTorch SDPA", "standard"],
              "attention_memory.svg": ["MiB", "sequence length N", "standard"],
              "training.svg": ["tokens/s", "PyTorch", "MiB"],
              "generate.svg": ["tokens/s", "llama.cpp", "decode", "prefill"],
              "serving.svg": ["time to first token", "tokens/s", "llama.cpp", "concurrent streams"]}
    for name in EXPECTED:
        # Every chart names machine, ISA, threads and date under its title.
        check_svg(tmp_path / name, labels[name] + ["AMD EPYC", "AVX-512", "thread"])


def test_serving_chart_when_serving_json_exists(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(DATA, data)
    rows = [dict(engine=engine, concurrency=c, tokens_per_second=t, ttft_ms=ms)
            for engine, scale in (("flash", 1.0), ("llama.cpp", 0.8))
            for c, t, ms in ((1, 60 * scale, 40), (4, 150 * scale, 90), (16, 260 * scale, 300))]
    with open(data / "serving.json", "w") as file:
        json.dump(dict(benchmark="serving", machine="test machine", isa="AVX-512", threads=[2],
                       date="2026-01-01T00:00Z", rows=rows), file)
    out = tmp_path / "out"
    written = plot_benchmarks.main(["--data", str(data), "--out", str(out)])
    assert "serving.svg" in [os.path.basename(path) for path in written]
    check_svg(out / "serving.svg", ["time to first token", "tokens/s", "test machine"])


def test_tutorial_figures_from_committed_json(tmp_path):
    import plot_tutorial_figures
    written = plot_tutorial_figures.main(["--out", str(tmp_path)])
    names = sorted(os.path.basename(path) for path in written)
    assert names == sorted(["causal-tiles.svg", "traffic-vs-model.svg", "attention_time.svg", "attention_memory.svg"])
    check_svg(tmp_path / "causal-tiles.svg", ["key tile", "query tile", "36 of 64 tiles computed", "skipped"], dated=False)
    check_svg(tmp_path / "traffic-vs-model.svg", ["MB", "sequence length N", "IO model", "counted by the kernel"], dated=False)
    # The committed traffic JSON: flash's counters equal the IO model to the byte; the standard
    # kernel also writes the log-sum-exp (4·N bytes), which the model's standard algorithm does not.
    with open(os.path.join(DATA, "traffic.json")) as file:
        for row in json.load(file):
            assert row["flash_counted"] == row["flash_model"], row
            assert row["standard_counted"] == row["standard_model"] + 4 * row["n"], row


def test_dataflow_diagrams(tmp_path, monkeypatch):
    import make_doc_diagrams
    monkeypatch.setattr(make_doc_diagrams, "ROOT", str(tmp_path))
    make_doc_diagrams.main()
    for module in make_doc_diagrams.DIAGRAMS:
        check_svg(tmp_path / "Sources" / module / f"{module}.docc" / "Resources" / f"{module.lower()}-dataflow.svg",
                  [f"{module}: how data flows"], dated=False)
