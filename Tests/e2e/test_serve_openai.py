"""End-to-end: the real `flash serve` binary, talked to with the `openai` Python client.

Starts the server on a free loopback port with an API key and the test models, checks greedy
output against `flash generate --temperature 0`, streaming and non-streaming, embeddings,
errors, a client disconnect, response bodies against docs/openapi.yaml's schemas (jsonschema),
and a graceful SIGTERM shutdown. Run by .ci/run:
    python3 -m pytest -q Tests/e2e/test_serve_openai.py
Environment: FLASH_BIN (default .build/release/flash), FLASH_MODEL_CACHE (~/.cache/flash-models).
"""
import http.client
import json
import os
import pathlib
import re
import signal
import subprocess
import threading
import time

import jsonschema
import openai
import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = os.environ.get("FLASH_BIN", str(ROOT / ".build/release/flash"))
CACHE = pathlib.Path(os.environ.get("FLASH_MODEL_CACHE", pathlib.Path.home() / ".cache/flash-models"))
GGUF = CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDER = CACHE / "all-MiniLM-L6-v2"
KEY = "e2e-key"
PROMPT = "The three primary colors are"
# A prompt the test model continues greedily for thousands of tokens (it counts on; checked with
# `flash generate --temperature 0 --max-tokens 600`), so a request is still running when a test
# disconnects or signals: a prompt the model ends by itself finished in under half a second once
# decoding reached ~160 tokens/s, and the disconnect and SIGTERM tests then saw nothing to cancel.
LONG_RUNNING_PROMPT = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"


class Server:
    """A `flash serve` process on 127.0.0.1 with --port 0; the port is read from its stderr."""

    def __init__(self, *extra, model=("--gguf", str(GGUF), "--embedding-model", str(EMBEDDER))):
        self.proc = subprocess.Popen(
            [BIN, "serve", *model, "--host", "127.0.0.1", "--port", "0", "--api-key", KEY,
             "--threads", "2", "--shutdown-grace", "2", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        self.port = None
        ready = threading.Event()

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line)
                m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                if "ready:" in line:
                    ready.set()
        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(120):
            self.proc.kill()
            raise RuntimeError("flash serve did not get ready in 120 s:\n" + "".join(self.lines))

    def url(self, path=""):
        return f"http://127.0.0.1:{self.port}{path}"

    def request(self, method, path, body=None, key=KEY, timeout=60):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        conn.request(method, path, body=None if body is None else (body if isinstance(body, str) else json.dumps(body)),
                     headers=headers)
        response = conn.getresponse()
        data = response.read().decode()
        conn.close()
        return response.status, data

    def metric(self, name):
        _, text = self.request("GET", "/metrics")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="module")
def server():
    assert pathlib.Path(BIN).exists(), f"{BIN} not built (swift build -c release --product flash)"
    assert GGUF.exists() and EMBEDDER.exists(), "test models missing: run scripts/fetch_models.sh"
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url("/v1"), api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def schemas():
    doc = yaml.safe_load((ROOT / "docs/openapi.yaml").read_text())

    def validate(instance, name):
        jsonschema.validate(instance, {"$ref": f"#/components/schemas/{name}", "components": doc["components"]},
                            cls=jsonschema.Draft202012Validator)
    return validate


def generate(*args):
    """`flash generate --gguf` text (stdout ends with one newline of its own)."""
    out = subprocess.run([BIN, "generate", "--gguf", str(GGUF), "--threads", "2", "--temperature", "0", *args],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert out.endswith("\n")
    return out[:-1]


def test_generate_reports_its_kv_cache_type_and_refuses_bad_flags_by_name():
    """The KV cache type shows in `flash generate`'s facts line (f16 by default for GGUF, f32 on
    request, both decode), and a bad flag value fails at once with a message naming the flag."""
    for flag, expected in [((), "F16"), (("--kv-cache-type", "f32"), "F32")]:
        run = subprocess.run([BIN, "generate", "--gguf", str(GGUF), "--threads", "2", "--temperature", "0", "--prompt", PROMPT,
                              "--max-tokens", "8", *flag], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert f"KV cache {expected}" in run.stderr
        assert len(run.stdout.strip()) > 0
    for bad, name in [(("--kv-cache-type", "bf16"), "--kv-cache-type"), (("--speculative", "maybe"), "--speculative"),
                      (("--speculative", "ngram", "--draft-tokens", "0"), "--draft-tokens")]:
        run = subprocess.run([BIN, "generate", "--gguf", str(GGUF), "--prompt", PROMPT, *bad], capture_output=True, text=True, timeout=60)
        assert run.returncode != 0
        assert name in run.stderr, run.stderr


def test_openapi_document_is_valid_openapi_3_1():
    validate_openapi(yaml.safe_load((ROOT / "docs/openapi.yaml").read_text()))


def test_health_and_models(server, client, schemas):
    status, body = server.request("GET", "/health", key=None)
    assert status == 200 and json.loads(body) == {"status": "ok"}
    models = client.models.list()
    assert [m.id for m in models.data] == ["SmolLM2-135M-Instruct.Q4_1", "all-MiniLM-L6-v2"]
    status, body = server.request("GET", "/v1/models")
    schemas(json.loads(body), "ModelList")


def test_greedy_completion_equals_flash_generate(server, client, schemas):
    expected = generate("--prompt", PROMPT, "--max-tokens", "24")
    result = client.completions.create(model="any", prompt=PROMPT, max_tokens=24, temperature=0)
    assert result.choices[0].text == expected
    assert result.usage.completion_tokens == 24 or result.choices[0].finish_reason == "stop"
    streamed = client.completions.create(model="any", prompt=PROMPT, max_tokens=24, temperature=0, stream=True)
    pieces, usage = [], None
    for chunk in streamed:
        if chunk.choices:
            pieces.append(chunk.choices[0].text)
        if chunk.usage:
            usage = chunk.usage
    assert "".join(pieces) == expected
    assert usage.completion_tokens == result.usage.completion_tokens
    assert usage.prompt_tokens == result.usage.prompt_tokens
    status, body = server.request("POST", "/v1/completions",
                                  {"prompt": PROMPT, "max_tokens": 5, "temperature": 0, "logprobs": 2, "n": 2})
    assert status == 200
    schemas(json.loads(body), "Completion")


def test_concurrent_streams_each_equal_flash_generate(server, client):
    """Four streams at once (the engine decodes them in one batch): each is token for token what
    `flash generate --temperature 0` prints for its prompt alone."""
    prompts = ["The three primary colors are", "Once upon a time, in a small village,",
               "def fibonacci(n):", "The capital of Japan is"]
    expected = [generate("--prompt", p, "--max-tokens", "20") for p in prompts]
    results = [None] * len(prompts)

    def stream(i):
        pieces = []
        for chunk in client.completions.create(model="any", prompt=prompts[i], max_tokens=20, temperature=0, stream=True):
            if chunk.choices:
                pieces.append(chunk.choices[0].text)
        results[i] = "".join(pieces)
    threads = [threading.Thread(target=stream, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert results == expected
    assert server.metric("flash_kv_blocks_used") == 0


def test_chat_streaming_and_not(server, client, schemas):
    expected = generate("--chat", "--prompt", "Name a fruit.", "--max-tokens", "40")
    messages = [{"role": "user", "content": "Name a fruit."}]
    result = client.chat.completions.create(model="any", messages=messages, max_tokens=40, temperature=0)
    assert result.choices[0].message.content == expected
    assert result.choices[0].finish_reason in ("stop", "length")
    stream = client.chat.completions.create(model="any", messages=messages, max_tokens=40, temperature=0, stream=True)
    text, last = "", None
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
        last = chunk
    assert text == expected
    assert last.choices == [] and last.usage.total_tokens == result.usage.total_tokens
    # Raw SSE: every event is `data: {json}` valid against the chunk schema, then [DONE].
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps({"messages": messages, "max_tokens": 8, "stream": True,
                                                             "logprobs": True, "top_logprobs": 2}),
                 {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    events = response.read().decode().split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: ")
        schemas(json.loads(event[6:]), "ChatCompletionChunk")
    status, body = server.request("POST", "/v1/chat/completions", {"messages": messages, "max_tokens": 3,
                                                                   "logprobs": True, "top_logprobs": 1})
    schemas(json.loads(body), "ChatCompletion")


def test_embeddings(server, client, schemas):
    result = client.embeddings.create(model="all-MiniLM-L6-v2", input=["a cat", "a dog"])  # base64 by default
    status, body = server.request("POST", "/v1/embeddings", {"input": ["a cat", "a dog"], "encoding_format": "float"})
    floats = json.loads(body)
    schemas(floats, "EmbeddingList")
    assert len(result.data) == 2 and len(result.data[0].embedding) == 384
    for got, want in zip(result.data, floats["data"]):
        assert got.embedding == pytest.approx(want["embedding"], abs=1e-6)


def test_errors(server, client, schemas):
    with pytest.raises(openai.BadRequestError) as bad:
        client.completions.create(model="any", prompt="hi", max_tokens=-1)
    assert "max_tokens" in str(bad.value)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="any", prompt="hi", n=1000)
    for body in ["{not json", json.dumps({"prompt": "hi", "max_tokens": "ten"})]:
        status, text = server.request("POST", "/v1/completions", body)
        assert status == 400
        schemas(json.loads(text), "ErrorResponse")
    status, text = server.request("GET", "/v1/models", key=None)
    assert status == 401
    schemas(json.loads(text), "ErrorResponse")
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=server.url("/v1"), api_key="wrong", max_retries=0).models.list()


def test_client_disconnect_cancels_the_generation(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    conn.request("POST", "/v1/completions", json.dumps({"prompt": LONG_RUNNING_PROMPT, "max_tokens": 3000,
                                                        "temperature": 0, "stream": True}),
                 {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.readline().startswith(b"data: ")
    # The request counts as running once the engine's step loop has admitted it (the statistics are
    # a snapshot taken after each step), which may be a moment after its first bytes were sent.
    deadline = time.time() + 10
    while server.metric("flash_requests_running") != 1:
        assert time.time() < deadline, "the streaming request never showed as running"
        time.sleep(0.05)
    response.close()
    conn.sock and conn.sock.close()
    conn.close()
    # 3000 tokens take minutes on this model; the sequence must stop within seconds.
    deadline = time.time() + 10
    while server.metric("flash_requests_running") != 0 or server.metric("flash_kv_blocks_used") != 0:
        assert time.time() < deadline, "generation still running (or its KV blocks held) 10 s after the client left"
        time.sleep(0.1)


def test_speculative_decoding_keeps_the_output():
    """`--speculative ngram` on the server and on `flash generate`: the same greedy text as
    without it, with guesses accepted on a prompt the output copies from."""
    prompt = "Repeat after me: the cat sat on the mat, the cat sat on the mat, the cat sat on the mat, the cat sat on the"
    expected = generate("--prompt", prompt, "--max-tokens", "24")
    assert generate("--prompt", prompt, "--max-tokens", "24", "--speculative", "ngram") == expected
    s = Server("--speculative", "ngram", "--draft-tokens", "4", "--parallel", "4")
    try:
        client = openai.OpenAI(base_url=s.url("/v1"), api_key=KEY, max_retries=0, timeout=120)
        result = client.completions.create(model="any", prompt=prompt, max_tokens=24, temperature=0)
        assert result.choices[0].text == expected
        assert s.metric("flash_speculative_accepted_tokens_total") > 0
        assert s.metric("flash_speculative_proposed_tokens_total") >= s.metric("flash_speculative_accepted_tokens_total")
    finally:
        s.stop()


def test_a_trained_checkpoint_runs_through_the_same_engine(tmp_path):
    """`flash train` a tiny model, then: `flash generate --checkpoint` (the engine) equals its
    `--no-cache` reference path (whole-context recompute, no engine), and `flash serve
    --checkpoint` answers the same continuation."""
    checkpoint = tmp_path / "ckpt"
    subprocess.run([BIN, "train", "--preset", "tiny", "--steps", "300", "--threads", "2", "--out", str(checkpoint)],
                   capture_output=True, text=True, timeout=300, check=True)

    def generate_checkpoint(*args):
        out = subprocess.run([BIN, "generate", "--checkpoint", str(checkpoint), "--threads", "2", "--temperature", "0",
                              "--prompt", "The ", "--max-tokens", "40", *args],
                             capture_output=True, text=True, timeout=300, check=True).stdout
        assert out.startswith("The ") and out.endswith("\n")
        return out[len("The "):-1]
    expected = generate_checkpoint()
    assert len(set(expected)) > 2, f"degenerate model: {expected!r}"
    assert generate_checkpoint("--no-cache") == expected
    s = Server(model=("--checkpoint", str(checkpoint)))
    try:
        client = openai.OpenAI(base_url=s.url("/v1"), api_key=KEY, max_retries=0, timeout=120)
        result = client.completions.create(model="any", prompt="The ", max_tokens=40, temperature=0)
        assert result.choices[0].text == expected
    finally:
        s.stop()


def test_sigterm_shuts_down_gracefully_and_exits_zero():
    s = Server()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps({"prompt": LONG_RUNNING_PROMPT, "max_tokens": 3000, "temperature": 0, "stream": True}),
                     {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.readline().startswith(b"data: ")
        started = time.time()
        s.proc.send_signal(signal.SIGTERM)
        rest = response.read().decode()  # the running stream is cancelled after the 2 s grace and ends properly
        assert rest.rstrip().endswith("data: [DONE]")
        assert '"finish_reason":"cancelled"' in rest
        assert s.proc.wait(30) == 0
        assert time.time() - started < 20
    finally:
        s.stop()
