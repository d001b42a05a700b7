"""scripts/bench_serve.py without a model: its statistics on hand-made numbers, the whole script
against scripts/tests/fake_serve.py standing in for both servers (it starts them, streams, reads
/metrics, stops them, writes JSON), and the serving chart drawn from that JSON and from the
committed sample (scripts/tests/data/serving-sample.json). Stdlib + matplotlib + pytest; never a
timing assertion."""
import json
import math
import os
import shutil
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import bench_serve  # noqa: E402
import plot_benchmarks  # noqa: E402
from test_plot_benchmarks import check_svg  # noqa: E402

FAKE = os.path.join(HERE, "fake_serve.py")
SAMPLE = os.path.join(HERE, "data", "serving-sample.json")


def test_percentile_matches_linear_interpolation():
    assert bench_serve.percentile([], 50) is None
    assert bench_serve.percentile([3.0], 99) == 3.0
    assert bench_serve.percentile([4, 1, 3, 2], 50) == 2.5  # between ranks 2 and 3
    assert bench_serve.percentile(list(range(101)), 99) == 99
    assert bench_serve.percentile([0, 10], 99) == pytest.approx(9.9)


def test_request_metrics_follow_vllm_definitions():
    # Sent at 1.0, first token at 1.25, 5 tokens, last at 1.65: TTFT 0.25 s, TPOT 0.4 / 4 = 0.1 s.
    result = dict(sent=1.0, token_times=[1.25, 1.35, 1.45, 1.55, 1.65], completion_tokens=5)
    ttft, tpot = bench_serve.request_metrics(result)
    assert ttft == pytest.approx(0.25) and tpot == pytest.approx(0.1)
    assert bench_serve.request_metrics(dict(sent=0, token_times=[0.5], completion_tokens=1)) == (0.5, None)
    assert bench_serve.request_metrics(dict(sent=0, token_times=[], completion_tokens=0)) == (None, None)


def test_decode_rate_counts_only_the_window_where_every_stream_decodes():
    # Stream a: tokens at 0,1,...,10; stream b starts at 2 and ends at 6. Window (2, 6]: a has
    # 3,4,5,6 and b has 3,4,5,6 (its first token at 2 is the window's start) → 8 tokens / 4 s.
    a = dict(token_times=[float(t) for t in range(11)])
    b = dict(token_times=[2.0, 3.0, 4.0, 5.0, 6.0])
    assert bench_serve.decode_rate([a, b]) == pytest.approx(2.0)
    assert bench_serve.decode_rate([a, dict(token_times=[])]) is None
    assert bench_serve.decode_rate([dict(token_times=[5.0]), dict(token_times=[1.0, 2.0])]) is None


def test_parse_metrics_reads_prometheus_text():
    text = ("# TYPE flash_kv_blocks_used gauge\nflash_kv_blocks_used 12\n"
            'llamacpp:tokens{slot="0"} 3\nllamacpp:tokens{slot="1"} 4\nbad line x\n')
    values = bench_serve.parse_metrics(text)
    assert values["flash_kv_blocks_used"] == 12 and values["llamacpp:tokens"] == 7


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory):
    """The whole benchmark, every phase, against the fake servers; returns the JSON it wrote."""
    out = tmp_path_factory.mktemp("bench") / "serving.json"
    model = tmp_path_factory.mktemp("model") / "fake.gguf"
    model.write_bytes(b"GGUF")
    os.environ["FAKE_TOKEN_DELAY"] = "0.01"
    os.environ["FAKE_SPECULATIVE"] = "1"
    bench_serve.main(["--flash", FAKE, "--llama-server", FAKE, "--gguf", str(model), "--rates", "40,inf",
                      "--requests", "5", "--max-tokens", "60", "--parallel", "3", "--streams", "1,2",
                      "--sweep-repeats", "1", "--prefix-requests", "3", "--speculation-repeats", "1",
                      "--kv-samples", "3", "--log-dir", str(out.parent / "logs"), "--json", str(out)])
    with open(out) as file:
        return json.load(file)


def test_fake_run_measures_every_phase_for_both_servers(fake_run):
    document = fake_run
    assert document["benchmark"] == "serving" and document["isa"] == "AVX-512" and document["threads"] == [2]
    rows = document["rows"]
    assert [(row["engine"], row["rate"]) for row in rows] == [
        ("flash", 40.0), ("flash", None), ("llama.cpp", 40.0), ("llama.cpp", None)]
    for row in rows:
        # fake_serve streams exactly max_tokens tokens and reports them in usage.
        assert row["requests"] == 5 and row["errors"] == 0 and row["completion_tokens"] == 5 * 60
        assert row["concurrency"] == 3
        assert row["tokens_per_second"] == pytest.approx(300 / row["duration_s"], rel=0.02)
        assert 0 < row["ttft_ms"] <= row["ttft_p99_ms"] and 0 < row["tpot_ms"] <= row["tpot_p99_ms"]
    assert {(row["engine"], row["streams"]) for row in document["sweep"]} == {
        ("flash", 1), ("flash", 2), ("llama.cpp", 1), ("llama.cpp", 2)}
    for row in document["sweep"]:
        assert row["decode_tokens_per_second"] > 0
    for row in document["prefix"]:
        # The system prompt + question, counted as fake_serve counts (words).
        assert row["prompt_tokens"] == len((bench_serve.SYSTEM_PROMPT + bench_serve.QUESTIONS[0]).split())
        assert len(row["ttfts_ms"]) == 3 and row["first_ttft_ms"] == row["ttfts_ms"][0]
    speculation = document["speculation"]
    assert [row["speculative"] for row in speculation["rows"]] == ["off", "ngram"]
    assert speculation["rows"][1]["proposed"] == 40 and speculation["rows"][1]["accepted"] == 30
    assert speculation["identical_text"] is True
    kv = document["kv"]
    # fake_serve's blocks are exactly ⌈held/16⌉ per stream; the client counts tokens up to just
    # after the read, and a token in flight can put the server one token ahead per stream.
    assert kv["samples"] and all(abs(s["blocks_used"] - s["blocks_needed"]) <= kv["streams"] for s in kv["samples"])
    assert kv["worst"] in kv["samples"]
    assert kv["llama_reserved_slots"] == 3 * 1024
    assert any("prompt lookup" in line for line in document["summary"])


def test_every_started_server_was_stopped(fake_run):
    # Each phase starts its own servers (2 engines × load, sweep, prefix; 2 flash for speculation; 1 for kv).
    assert len(bench_serve.STARTED) >= 9
    assert all(server.process.poll() is not None for server in bench_serve.STARTED)


def test_speculation_skipped_without_the_flag(tmp_path, monkeypatch):
    monkeypatch.delenv("FAKE_SPECULATIVE", raising=False)
    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF")
    results = bench_serve.main(["--flash", FAKE, "--llama-server", "none", "--gguf", str(model),
                                "--phases", "speculation", "--log-dir", str(tmp_path / "logs")])
    assert "skipped" in results["speculation"]


def test_bad_arguments_name_the_flag(tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench_serve.main(["--flash", FAKE, "--gguf", str(tmp_path / "missing.gguf")])
    assert "--gguf" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench_serve.main(["--flash", FAKE, "--gguf", FAKE, "--phases", "load,warp"])
    assert "warp" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["sample", "fake_run"])
def test_serving_chart_from_bench_serve_json(source, fake_run, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    if source == "sample":
        shutil.copy(SAMPLE, data / "serving.json")
    else:
        with open(data / "serving.json", "w") as file:
            json.dump(fake_run, file)
    written = plot_benchmarks.main(["--data", str(data), "--out", str(tmp_path / "out")])
    assert [os.path.basename(path) for path in written] == ["serving.svg"]
    check_svg(tmp_path / "out" / "serving.svg",
              ["time to first token", "tokens/s", "flash", "llama.cpp", "all at once", "40/s" if source == "fake_run"
               else "50/s", "concurrent streams", "AVX-512"])


def test_load_labels_and_order():
    assert plot_benchmarks.load_label(dict(rate=None, concurrency=8)) == "all at once"
    assert plot_benchmarks.load_label(dict(rate=0.5, concurrency=8)) == "0.5/s"
    assert plot_benchmarks.load_label(dict(concurrency=4)) == "4"
    rows = [dict(rate=None), dict(rate=2.0), dict(rate=0.5)]
    assert [plot_benchmarks.load_order(r) for r in sorted(rows, key=plot_benchmarks.load_order)] == [0.5, 2.0, math.inf]
