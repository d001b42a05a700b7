#!/usr/bin/env python3
"""Serving benchmark: `flash serve` against llama.cpp's `llama-server` on the same GGUF, the same
threads and the same context per slot, in one run, over loopback (issue 10, "Performance").

    python3 scripts/bench_serve.py [--gguf FILE] [--threads 2] [--parallel 8] [--rates 0.5,1,2,4,inf]
        [--requests 24] [--max-tokens 96] [--temperature 0.8] [--streams 1,2,4,8,16]
        [--phases load,sweep,prefix,speculation,kv] [--flash PATH] [--llama-server PATH] [--json OUT]

Phases (each starts its own servers on free loopback ports and stops them; only those):
  load         requests from a fixed prompt set (PROMPTS below), Poisson arrivals at each rate
               (req/s; `inf` = all at once) under a concurrency cap of --parallel; streaming
               completions; per server and rate: request throughput, output tokens/s, time to first
               token (TTFT) and time per output token (TPOT, as vLLM defines it: (latency − TTFT) /
               (tokens − 1)) p50/p99, and flash/llama-server ratios.
  sweep        aggregate decode tokens/s at 1, 2, 4, 8, 16 concurrent streams (servers started with
               --parallel = the largest count): tokens streamed while every stream is decoding
               (between the last first token and the first last token) per second of that window;
               `--flash-sweep engine` takes flash's from `flash bench serve` (no HTTP) instead.
  prefix       a shared ~500-token system prompt: TTFT of the first request against later ones with
               the same prefix and different questions (flash: prefix cache; llama-server: its slot
               prompt cache, `cache_prompt`).
  speculation  single-stream tokens/s on a task that copies from its prompt (greedy), flash with
               `--speculative ngram` against without (skipped with a note if flash lacks the flag).
  kv           KV memory of a running batch: flash's /metrics `flash_kv_blocks_used` × block size
               against the tokens its sequences hold at that moment.
Prints the CPU model and the ISA `flash --version` reports. `--json OUT` writes the results in the
format of scripts/bench_json.py (rows: one per server and rate, as plot_benchmarks.py's serving
chart reads them; the other phases as extra keys).
"""
import argparse
import http.client
import json
import math
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import bench_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("FLASH_MODEL_CACHE", os.path.expanduser("~/.cache/flash-models"))
FLASH = "flash"
LLAMA = "llama.cpp"
STARTED = []  # every Server this process started, so a test can check that each was stopped

# The fixed prompt set: story and essay openings that a small model continues for a long while.
PROMPTS = [
    "Once upon a time, in a village at the edge of a great forest, there lived an old clockmaker who",
    "The history of the printing press begins in the fifteenth century, when",
    "Dear diary, today was the strangest day of my life. It started when",
    "In the year 2150, the first city on Mars had grown to a population of",
    "The recipe my grandmother taught me starts with flour, butter and",
    "A short guide to learning the piano as an adult: first,",
    "The river had flooded the valley every spring for a hundred years, and the farmers",
    "Chapter one. The train left the station at midnight, carrying",
    "Scientists have long wondered why birds migrate. One explanation is that",
    "The best advice I ever received about writing was",
    "Our hiking trip through the mountains began on a cold morning in October, when",
    "The little robot looked at the broken toy and decided that",
    "When the library reopened after the storm, the librarian discovered",
    "Photosynthesis is the process by which plants turn sunlight into energy. It works by",
    "The detective examined the empty room carefully. On the table there was",
    "My favourite place in the whole city is a small cafe where",
]

# A shared system prompt of roughly 500 tokens (SmolLM2's tokenizer: ~1.3 tokens per word).
SYSTEM_PROMPT = ("You are a helpful assistant for a public library. " + " ".join(
    f"Rule {i}: when a visitor asks about {topic}, answer politely, cite the shelf number, and suggest "
    f"one related book from the {section} section before you finish your answer."
    for i, (topic, section) in enumerate([
        ("opening hours", "reference"), ("borrowing limits", "fiction"), ("late fees", "history"),
        ("the reading room", "science"), ("printing", "technology"), ("children's events", "children's"),
        ("study rooms", "languages"), ("rare books", "art"), ("lost cards", "travel"), ("donations", "music"),
        ("audiobooks", "poetry"), ("newspapers", "biography"), ("maps", "geography"), ("microfilm", "law")],
        start=1)) + " Always be brief.\n\n")
QUESTIONS = ["Visitor: When do you open on Sundays?\nAssistant:", "Visitor: How many books can I borrow?\nAssistant:",
             "Visitor: Where can I print a letter?\nAssistant:", "Visitor: Do you have books about volcanoes?\nAssistant:",
             "Visitor: I lost my card, what now?\nAssistant:", "Visitor: Can I donate old magazines?\nAssistant:",
             "Visitor: Is there a quiet room to study?\nAssistant:", "Visitor: Do you lend audiobooks?\nAssistant:"]

# A task that copies from its prompt: the model is asked to repeat a passage, so most of its output
# is already in the prompt and prompt lookup (n-gram speculation) can guess it.
COPY_PASSAGE = ("The committee met on Tuesday to review the budget for the new community garden. "
                "They agreed to buy twelve raised beds, a water tank, two benches and a shed for tools. "
                "Volunteers will build the beds in March, and planting starts in April if the weather allows. ")
COPY_PROMPT = ("Repeat the following text exactly.\n\nText: " + COPY_PASSAGE + "\n\nRepeated text: " + COPY_PASSAGE
               + "\n\nRepeat it once more.\n\nRepeated text:")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    """The q-th percentile (0..100), linear between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


class Server:
    """One server process this script started (its own process group), reachable on 127.0.0.1:port.
    `stop` ends it (SIGTERM, then SIGKILL after a bound) and only it."""

    def __init__(self, name, command, port, log_dir, ready_timeout=300, env=None):
        self.name, self.command, self.port = name, command, port
        self.log_path = os.path.join(log_dir, f"{name.replace('.', '_')}-{port}.log")
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
                                        env=dict(os.environ, **(env or {})))
        STARTED.append(self)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"{name} exited with {self.process.returncode} before it was ready; "
                                   f"command: {' '.join(command)}; log: {self.tail()}")
            try:
                status, _ = request("GET", port, "/health", timeout=5)
                if status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{name} not ready within {ready_timeout} s; log: {self.tail()}")
            time.sleep(0.2)

    def tail(self, lines=15):
        self.log.flush()
        with open(self.log_path, errors="replace") as file:
            return "".join(file.readlines()[-lines:])

    def stop(self, grace=20):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def request(method, port, path, body=None, timeout=60):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=json.dumps(body) if body is not None else None,
                           headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# Sampling cut-offs sent with every sampled request, to both servers: llama-server's own defaults
# (top_k 40, top_p 0.95; it also applies min_p 0.05, which flash does not have), so both draw from
# nearly the same truncated distribution and neither does more sampling work by default.
SAMPLING = dict(top_k=40, top_p=0.95)


def stream_completion(port, prompt, max_tokens, temperature, seed, on_token=None, timeout=600):
    """One streaming /v1/completions request. Returns a dict with the times (perf_counter) of the
    send and of every chunk that carried text, the completion and prompt token counts (from the
    final `usage` chunk when the server sends one, else the number of text chunks) and the text."""
    body = dict(prompt=prompt, max_tokens=max_tokens, temperature=temperature, seed=seed, stream=True,
                stream_options=dict(include_usage=True), **(SAMPLING if temperature > 0 else {}))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    sent = time.perf_counter()
    connection.request("POST", "/v1/completions", body=json.dumps(body), headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    token_times, text, usage = [], [], None
    try:
        while True:
            line = response.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                if choice.get("text"):
                    token_times.append(time.perf_counter())
                    text.append(choice["text"])
                    if on_token:
                        on_token()
    finally:
        connection.close()
    completion = (usage or {}).get("completion_tokens") or len(token_times)
    return dict(sent=sent, token_times=token_times, completion_tokens=completion,
                prompt_tokens=(usage or {}).get("prompt_tokens"), text="".join(text), done=time.perf_counter())


def request_metrics(result):
    """TTFT and TPOT (vLLM's definition) of one streamed request, in seconds."""
    times = result["token_times"]
    if not times:
        return None, None
    ttft = times[0] - result["sent"]
    n = result["completion_tokens"]
    tpot = (times[-1] - times[0]) / (n - 1) if n > 1 else None
    return ttft, tpot


# ---------------------------------------------------------------- servers

def flash_command(args, port, parallel, extra=()):
    return [args.flash, "serve", "--gguf", args.gguf, "--host", "127.0.0.1", "--port", str(port),
            "--threads", str(args.threads), "--parallel", str(parallel),
            "--kv-cache-tokens", str(parallel * args.context), "--block-size", str(args.block_size),
            "--max-waiting", "256", *extra]


def llama_command(args, port, parallel):
    return [args.llama_server, "-m", args.gguf, "--host", "127.0.0.1", "--port", str(port),
            "-np", str(parallel), "-cb", "-t", str(args.threads), "-tb", str(args.threads),
            "-c", str(parallel * args.context), "--metrics", "--no-webui"]


def start(args, engine, parallel, extra=()):
    port = free_port()
    if engine == FLASH:
        return Server(FLASH, flash_command(args, port, parallel, extra), port, args.log_dir)
    # llama-server keeps its own OpenMP wait policy (workers spin at every barrier) unless
    # OMP_WAIT_POLICY is set. On a machine with more runnable processes than cores spinning costs
    # whole time slices (8 vs 38 tokens/s single stream here under load): set
    # OMP_WAIT_POLICY=passive there. On an idle machine passive is no favour to llama-server
    # (39 vs 146 tokens/s single stream, 2026-12-02), so it is not the default.
    return Server(LLAMA, llama_command(args, port, parallel), port, args.log_dir)


def warm_up(server, args):
    """One short request first (as vLLM's benchmark does), so no phase pays first-call costs."""
    stream_completion(server.port, "Hello, my name is", 8, args.temperature, 0)


def engines(args):
    return [FLASH] + ([LLAMA] if args.llama_server else [])


# ---------------------------------------------------------------- phases

def run_load(server, args, rate, seed):
    """Poisson arrivals at `rate` req/s (inf: all at once) under a cap of args.parallel requests in
    flight; returns the row for this server and rate."""
    rng = random.Random(seed)
    cap = threading.Semaphore(args.parallel)
    results, errors, threads = [], [], []
    lock = threading.Lock()

    def one(index):
        with cap:
            try:
                result = stream_completion(server.port, PROMPTS[index % len(PROMPTS)], args.max_tokens,
                                           args.temperature, seed * 1000 + index)
                with lock:
                    results.append(result)
            except Exception as error:  # noqa: BLE001 -- reported in the row, never swallowed
                with lock:
                    errors.append(str(error))

    begin = time.perf_counter()
    for index in range(args.requests):
        if index and rate != math.inf:
            time.sleep(rng.expovariate(rate))
        thread = threading.Thread(target=one, args=(index,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(args.request_timeout)
    elapsed = time.perf_counter() - begin
    ttfts, tpots = [], []
    for result in results:
        ttft, tpot = request_metrics(result)
        if ttft is not None:
            ttfts.append(ttft * 1000)
        if tpot is not None:
            tpots.append(tpot * 1000)
    tokens = sum(result["completion_tokens"] for result in results)
    return dict(engine=server.name, rate=None if rate == math.inf else rate, concurrency=args.parallel,
                requests=len(results), errors=len(errors), duration_s=round(elapsed, 3),
                request_throughput=round(len(results) / elapsed, 3), tokens_per_second=round(tokens / elapsed, 2),
                completion_tokens=tokens, ttft_ms=round(percentile(ttfts, 50), 1) if ttfts else None,
                ttft_p99_ms=round(percentile(ttfts, 99), 1) if ttfts else None,
                tpot_ms=round(percentile(tpots, 50), 2) if tpots else None,
                tpot_p99_ms=round(percentile(tpots, 99), 2) if tpots else None,
                first_error=errors[0] if errors else None)


def phase_load(args):
    rows = []
    for engine in engines(args):
        with start(args, engine, args.parallel) as server:
            warm_up(server, args)
            for position, rate in enumerate(args.rates):
                row = run_load(server, args, rate, seed=position + 1)
                rows.append(row)
                print(f"load   {engine:9s} rate {'all' if rate == math.inf else rate:>4}/s: "
                      f"{row['requests']} requests ({row['errors']} failed) in {row['duration_s']:.1f} s, "
                      f"{row['request_throughput']:.2f} req/s, {row['tokens_per_second']:.1f} tok/s, "
                      f"TTFT p50 {row['ttft_ms']} ms p99 {row['ttft_p99_ms']} ms, "
                      f"TPOT p50 {row['tpot_ms']} ms p99 {row['tpot_p99_ms']} ms", flush=True)
    return rows


def decode_rate(results):
    """Aggregate decode tokens/s of streams that ran together: text chunks streamed between the
    moment every stream had its first token and the moment the first stream ended, per second."""
    starts = [r["token_times"][0] for r in results if r["token_times"]]
    ends = [r["token_times"][-1] for r in results if r["token_times"]]
    if len(starts) < len(results):
        return None
    begin, end = max(starts), min(ends)
    if end <= begin:
        return None
    # Chunks strictly after `begin`: each was one decode step of its stream within the window.
    tokens = sum(1 for r in results for t in r["token_times"] if begin < t <= end)
    return tokens / (end - begin)


def run_streams(port, prompts, args, temperature, seed, max_tokens=None, on_token=None):
    results, threads = [None] * len(prompts), []

    def one(i):
        results[i] = stream_completion(port, prompts[i], max_tokens or args.max_tokens, temperature,
                                       seed + i, on_token=on_token)
    for i in range(len(prompts)):
        threads.append(threading.Thread(target=one, args=(i,), daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(args.request_timeout)
    if any(result is None for result in results):
        raise RuntimeError("a stream failed or timed out")
    return results


def engine_sweep(args):
    """flash's sweep from `flash bench serve` (the serving engine without HTTP, greedy, 32-token
    prompts): the engine's own scaling, without HTTP and sampling."""
    command = [args.flash, "bench", "serve", "--json", "--gguf", args.gguf, "--threads", str(args.threads),
               "--streams", ",".join(map(str, args.streams)), "--decode-tokens", str(args.max_tokens)]
    output = subprocess.run(command, check=True, capture_output=True, text=True, timeout=args.request_timeout).stdout
    document = json.loads(output.strip().splitlines()[-1])
    rows = []
    for row in document["rows"]:
        rows.append(dict(engine=FLASH, streams=row["streams"], source="flash bench serve (engine, no HTTP, greedy)",
                         decode_tokens_per_second=round(row["decode_tokens_per_second"], 2),
                         decode_tokens_per_cpu_second=row.get("decode_tokens_per_cpu_second")))
        print(f"sweep  {FLASH:9s} {row['streams']:2d} streams: {row['decode_tokens_per_second']:7.1f} decode tok/s "
              f"(flash bench serve: engine only)", flush=True)
    return rows


def phase_sweep(args):
    rows = []
    top = max(args.streams)
    for engine in engines(args):
        if engine == FLASH and args.flash_sweep == "engine":
            rows += engine_sweep(args)
            continue
        with start(args, engine, top) as server:
            warm_up(server, args)
            for n in args.streams:
                prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
                rates = [decode_rate(run_streams(server.port, prompts, args, args.temperature, 100 * n))
                         for _ in range(args.sweep_repeats)]
                rates = [r for r in rates if r is not None]
                best = max(rates) if rates else None
                rows.append(dict(engine=engine, streams=n, source="HTTP, streaming",
                                 decode_tokens_per_second=round(best, 2) if best else None))
                print(f"sweep  {engine:9s} {n:2d} streams: {best or float('nan'):7.1f} decode tok/s", flush=True)
    for row in rows:
        single = next((r["decode_tokens_per_second"] for r in rows
                       if r["engine"] == row["engine"] and r["streams"] == 1), None)
        if single and row["decode_tokens_per_second"]:
            row["vs_single_stream"] = round(row["decode_tokens_per_second"] / single, 2)
    return rows


def phase_prefix(args):
    rows = []
    for engine in engines(args):
        with start(args, engine, args.parallel) as server:
            warm_up(server, args)
            ttfts = []
            for i in range(args.prefix_requests):
                result = stream_completion(server.port, SYSTEM_PROMPT + QUESTIONS[i % len(QUESTIONS)], 8, 0.0, i)
                ttfts.append(request_metrics(result)[0] * 1000)
                prompt_tokens = result["prompt_tokens"]
            later = statistics.median(ttfts[1:])
            rows.append(dict(engine=engine, prompt_tokens=prompt_tokens, first_ttft_ms=round(ttfts[0], 1),
                             later_ttft_ms=round(later, 1), speedup=round(ttfts[0] / later, 1),
                             ttfts_ms=[round(t, 1) for t in ttfts]))
            print(f"prefix {engine:9s} {prompt_tokens}-token prompts: first TTFT {ttfts[0]:.0f} ms, "
                  f"later (median of {len(ttfts) - 1}) {later:.1f} ms: {ttfts[0] / later:.1f}× sooner", flush=True)
    return rows


def flash_has_flag(args, flag):
    text = subprocess.run([args.flash, "serve", "--help"], capture_output=True, text=True, timeout=60).stdout
    return flag in text


def phase_speculation(args):
    if not flash_has_flag(args, "--speculative"):
        print("speculation: skipped (this flash serve has no --speculative flag)", flush=True)
        return dict(skipped="flash serve has no --speculative flag")
    rows = []
    for label, extra in (("off", ()), ("ngram", ("--speculative", "ngram"))):
        with start(args, FLASH, 1, extra) as server:
            warm_up(server, args)
            best, text = 0.0, None
            for _ in range(args.speculation_repeats):
                result = stream_completion(server.port, COPY_PROMPT, args.max_tokens, 0.0, 0)
                n, times = result["completion_tokens"], result["token_times"]
                rate = (n - 1) / (times[-1] - times[0]) if n > 1 and times[-1] > times[0] else 0.0
                best, text = max(best, rate), result["text"]
            status, metrics = request("GET", server.port, "/metrics")
            counters = parse_metrics(metrics.decode()) if status == 200 else {}
            rows.append(dict(speculative=label, tokens_per_second=round(best, 2), completion_tokens=n,
                             proposed=counters.get("flash_speculative_proposed_tokens_total"),
                             accepted=counters.get("flash_speculative_accepted_tokens_total"), text=text))
            print(f"spec   flash --speculative {label:5s}: {best:7.1f} tok/s single stream "
                  f"({n} tokens; proposed {rows[-1]['proposed']}, accepted {rows[-1]['accepted']})", flush=True)
    same = rows[0]["text"] == rows[1]["text"]
    print(f"spec   speed-up {rows[1]['tokens_per_second'] / rows[0]['tokens_per_second']:.2f}×; "
          f"greedy texts {'identical' if same else 'DIFFER'}", flush=True)
    return dict(rows=rows, speedup=round(rows[1]["tokens_per_second"] / rows[0]["tokens_per_second"], 2),
                identical_text=same)


def parse_metrics(text):
    """Prometheus text exposition → {name: value} for unlabelled samples (and labelled summed)."""
    values = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            values[name] = values.get(name, 0.0) + float(value) if "{" in name_part else float(value)
        except ValueError:
            continue
    return values


def phase_kv(args):
    """While args.parallel streams decode, read flash's KV blocks in use and the tokens its
    sequences hold (each stream's prompt tokens + tokens streamed so far)."""
    n = args.parallel
    with start(args, FLASH, n) as server:
        warm_up(server, args)
        counts = [0] * n
        lock = threading.Lock()
        samples = []
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(n)]
        # The prompt token counts, from a 1-token request each (the usage field).
        prompt_tokens = [stream_completion(server.port, p, 1, 0.0, 0)["prompt_tokens"] for p in prompts]

        def counter(i):
            def tick():
                with lock:
                    counts[i] += 1
            return tick
        results, threads = [None] * n, []

        def one(i):
            results[i] = stream_completion(server.port, prompts[i], args.max_tokens, args.temperature, 7 + i,
                                           on_token=counter(i))
        for i in range(n):
            threads.append(threading.Thread(target=one, args=(i,), daemon=True))
            threads[-1].start()
        deadline = time.monotonic() + args.request_timeout
        while time.monotonic() < deadline:  # until every stream has its first token
            with lock:
                if min(counts) > 0:
                    break
            time.sleep(0.01)
        for _ in range(args.kv_samples):
            with lock:
                before = list(counts)
            _, text = request("GET", server.port, "/metrics")
            with lock:
                after = list(counts)
            metrics = parse_metrics(text.decode())
            used = metrics.get("flash_kv_blocks_used")
            # Tokens streamed while /metrics was read are counted as held (the server had them or
            # was about to); a sample counts only while every stream is decoding.
            if used is not None and all(0 < before[i] and after[i] < args.max_tokens for i in range(n)):
                held = [prompt_tokens[i] + after[i] for i in range(n)]
                samples.append(dict(blocks_used=int(used), tokens_held=sum(held),
                                    blocks_needed=sum(math.ceil(h / args.block_size) for h in held)))
            time.sleep(0.1)
        for thread in threads:
            thread.join(args.request_timeout)
    if not samples:
        print("kv     no sample caught every stream decoding (flash_kv_blocks_used missing or streams ended early)")
        return dict(streams=n, block_size=args.block_size, samples=[])
    worst = max(samples, key=lambda s: s["blocks_used"] - s["blocks_needed"])
    slots = worst["blocks_used"] * args.block_size
    print(f"kv     flash {n} streams: {worst['blocks_used']} blocks × {args.block_size} = {slots} token slots for "
          f"{worst['tokens_held']} tokens held ({slots / worst['tokens_held']:.2f} slots per token; "
          f"{worst['blocks_used'] - worst['blocks_needed']} blocks beyond ⌈tokens/block⌉ per sequence); "
          f"llama-server reserves -c = {n * args.context} token slots", flush=True)
    return dict(streams=n, block_size=args.block_size, samples=samples, worst=worst,
                slots_per_token=round(slots / worst["tokens_held"], 3),
                extra_blocks=worst["blocks_used"] - worst["blocks_needed"],
                llama_reserved_slots=n * args.context)


# ---------------------------------------------------------------- summary

def summarise(results):
    """The issue's targets, from whatever phases ran."""
    lines = []
    load = results.get("rows") or []
    full = {row["engine"]: row for row in load if row["rate"] is None}
    if FLASH in full and LLAMA in full:
        f, l = full[FLASH], full[LLAMA]
        ratio = f["tokens_per_second"] / l["tokens_per_second"] if l["tokens_per_second"] else float("nan")
        lines.append(f"output tok/s at concurrency {f['concurrency']}: flash {f['tokens_per_second']:.1f}, "
                     f"llama-server {l['tokens_per_second']:.1f}: {ratio:.2f}× (target ≥ 1.5×); "
                     f"TPOT p50 {f['tpot_ms']} vs {l['tpot_ms']} ms (target: no worse)")
    sweep = results.get("sweep") or []
    compared = 8 if any(row["streams"] == 8 for row in sweep) else max((row["streams"] for row in sweep), default=None)
    for row in sweep:
        if row["streams"] == compared and row.get("vs_single_stream"):
            lines.append(f"{row['engine']}: {compared} streams decode {row['vs_single_stream']:.2f}× single stream"
                         + (" (target at 8: ≥ 3×)" if row["engine"] == FLASH else ""))
    for row in results.get("prefix") or []:
        lines.append(f"{row['engine']}: shared prefix cuts TTFT {row['speedup']:.1f}×"
                     + (" (target ≥ 10×)" if row["engine"] == FLASH else ""))
    speculation = results.get("speculation") or {}
    if "speedup" in speculation:
        lines.append(f"flash prompt lookup: {speculation['speedup']:.2f}× single stream (target ≥ 1.5×)")
    kv = results.get("kv") or {}
    if kv.get("worst"):
        lines.append(f"flash KV: {kv['slots_per_token']:.2f} token slots per token held, "
                     f"{kv['extra_blocks']} blocks beyond need across {kv['streams']} sequences (target ≤ 1 per sequence)")
    return lines


def default_llama_server():
    path = os.path.expanduser("~/.cache/flash-peers/llama-server/build/bin/llama-server")
    return path if os.access(path, os.X_OK) else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gguf", default=os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--flash", default=os.path.join(ROOT, ".build", "release", "flash"))
    parser.add_argument("--llama-server", default=default_llama_server(),
                        help="llama-server binary (default: the one scripts/build_llama_server.sh built); "
                             "'none' runs flash alone")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=8, help="slots of both servers and the load phase's concurrency cap")
    parser.add_argument("--context", type=int, default=1024, help="context tokens per slot (both servers)")
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--rates", default="0.5,1,2,4,inf", help="Poisson arrival rates, requests/s (inf: all at once)")
    parser.add_argument("--requests", type=int, default=24, help="requests per rate")
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=SAMPLING["top_k"], help="sent to both servers (0: not sent)")
    parser.add_argument("--top-p", type=float, default=SAMPLING["top_p"], help="sent to both servers (1: not sent)")
    parser.add_argument("--streams", default="1,2,4,8,16")
    parser.add_argument("--sweep-repeats", type=int, default=2)
    parser.add_argument("--flash-sweep", choices=("http", "engine"), default="http",
                        help="flash's batch sweep over HTTP, or from `flash bench serve` (the engine alone, "
                             "greedy, without HTTP)")
    parser.add_argument("--prefix-requests", type=int, default=6)
    parser.add_argument("--speculation-repeats", type=int, default=2)
    parser.add_argument("--kv-samples", type=int, default=5)
    parser.add_argument("--request-timeout", type=float, default=600)
    parser.add_argument("--phases", default="load,sweep,prefix,speculation,kv")
    parser.add_argument("--log-dir", default=None, help="server logs (default: a temporary folder, kept)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    SAMPLING.clear()
    SAMPLING.update({k: v for k, v in (("top_k", args.top_k), ("top_p", args.top_p)) if v not in (0, 1)})
    args.rates = [math.inf if r.strip() == "inf" else float(r) for r in args.rates.split(",")]
    args.streams = [int(s) for s in args.streams.split(",")]
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(phases) - {"load", "sweep", "prefix", "speculation", "kv"}
    if unknown:
        parser.error(f"--phases: unknown {sorted(unknown)}; expected load, sweep, prefix, speculation, kv")
    if any(r <= 0 for r in args.rates) or args.requests < 1 or args.parallel < 1 or min(args.streams) < 1:
        parser.error("--rates, --requests, --parallel and --streams must be positive")
    if args.llama_server in (None, "none"):
        args.llama_server = None
        print("llama-server: not given and not built (bash scripts/build_llama_server.sh); flash alone", file=sys.stderr)
    for path, what in ((args.gguf, "--gguf"), (args.flash, "--flash")):
        if not os.path.exists(path):
            parser.error(f"{what}: no such file: {path}")
    args.log_dir = args.log_dir or tempfile.mkdtemp(prefix="bench_serve-")
    os.makedirs(args.log_dir, exist_ok=True)

    run = bench_json.Run("serving", args.flash)
    print(f"machine {bench_json.machine()}; flash ISA {bench_json.isa(args.flash)}; "
          f"flash --version: {subprocess.run([args.flash, '--version'], capture_output=True, text=True).stdout.strip()}")
    print(f"model {os.path.basename(args.gguf)}, {args.threads} threads, {args.parallel} slots × {args.context} "
          f"context, {args.max_tokens}-token completions at temperature {args.temperature} {SAMPLING}; logs in {args.log_dir}",
          flush=True)
    results = {}
    if "load" in phases:
        results["rows"] = phase_load(args)
    if "sweep" in phases:
        results["sweep"] = phase_sweep(args)
    if "prefix" in phases:
        results["prefix"] = phase_prefix(args)
    if "speculation" in phases:
        results["speculation"] = phase_speculation(args)
    if "kv" in phases:
        results["kv"] = phase_kv(args)
    print("\nsummary")
    for line in summarise(results):
        print("  " + line)
    if args.json:
        rows = results.pop("rows", [])
        settings = dict(model=os.path.basename(args.gguf), parallel=args.parallel, context_per_slot=args.context,
                        max_tokens=args.max_tokens, temperature=args.temperature, sampling=dict(SAMPLING),
                        requests_per_rate=args.requests,
                        llama_server=args.llama_server)
        run.write(args.json, rows, [args.threads], extra=dict(settings=settings, summary=summarise(
            dict(results, rows=rows)), **results))
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
