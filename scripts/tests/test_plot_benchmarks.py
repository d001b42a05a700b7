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
EXPECTED = ["gemm.svg", "attention_time.svg", "attention_memory.svg", "training.svg", "generate.svg"]


def check_svg(path, must_contain):
    assert os.path.getsize(path) > 5000, f"{path} is (nearly) empty"
    root = ElementTree.parse(path).getroot()
    assert root.tag.endswith("svg")
    text = " ".join(root.itertext())
    for words in must_contain:
        assert words in text, f"{os.path.basename(path)} lacks {words!r}"
    assert re.search(r"20\d\d-\d\d-\d\d", text), f"{os.path.basename(path)} names no date"


def test_every_chart_from_sample_data(tmp_path):
    written = plot_benchmarks.main(["--data", DATA, "--out", str(tmp_path)])
    assert sorted(os.path.basename(path) for path in written) == sorted(EXPECTED)
    labels = {"gemm.svg": ["GFLOP/s", "matrix size n", "numpy", "peak"],
              "attention_time.svg": ["ms", "sequence length N", "PyTorch SDPA", "standard"],
              "attention_memory.svg": ["MiB", "sequence length N", "standard"],
              "training.svg": ["tokens/s", "PyTorch", "MiB"],
              "generate.svg": ["tokens/s", "llama.cpp", "decode", "prefill"]}
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
