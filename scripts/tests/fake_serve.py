#!/usr/bin/env python3
"""A stand-in for `flash serve` and `llama-server` in the tests of scripts/bench_serve.py: takes
either's command line, listens on --port, and streams deterministic completions (one word per
token, FAKE_TOKEN_DELAY seconds apart) with a final `usage` chunk, as both servers do. /metrics
reports flash_kv_blocks_used as the blocks the running streams need exactly (⌈tokens/16⌉ each),
and, with --speculative, speculative counters. `--version` prints a flash-style version line.
Stdlib only; never a model."""
import json
import math
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY = float(__import__("os").environ.get("FAKE_TOKEN_DELAY", "0.01"))
BLOCK = 16
lock = threading.Lock()
held = {}  # stream id → tokens it holds (prompt + generated)
counter = [0]
speculative = "--speculative" in sys.argv


def prompt_tokens(prompt):
    return max(1, len(prompt.split()))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def reply(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, '{"status":"ok"}')
        elif self.path == "/metrics":
            with lock:
                used = sum(math.ceil(n / BLOCK) for n in held.values())
            lines = [f"flash_kv_blocks_used {used}"]
            if speculative:
                lines += ["flash_speculative_proposed_tokens_total 40", "flash_speculative_accepted_tokens_total 30"]
            self.reply(200, "\n".join(lines) + "\n", "text/plain")
        else:
            self.reply(404, "{}")

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/completions" or not body.get("stream"):
            self.reply(400, '{"error": "fake_serve streams /v1/completions only"}')
            return
        n, count = prompt_tokens(body["prompt"]), body["max_tokens"]
        with lock:
            counter[0] += 1
            me = counter[0]
            held[me] = n
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for i in range(count):
                time.sleep(DELAY / (2 if speculative else 1))
                chunk = {"choices": [{"index": 0, "text": f" w{i}", "finish_reason": None}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                self.wfile.flush()
                with lock:
                    held[me] = n + i + 1
            usage = {"prompt_tokens": n, "completion_tokens": count, "total_tokens": n + count}
            self.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()
        finally:
            with lock:
                held.pop(me, None)
        self.close_connection = True


def main():
    argv = sys.argv[1:]
    if argv[:1] == ["--version"]:
        print("flash 0.0.0-fake (AVX-512, 16-float vectors)")
        return
    if argv[:2] == ["serve", "--help"]:
        print("fake flash serve --gguf FILE --port N" + (" --speculative ngram|draft" if "FAKE_SPECULATIVE" in
                                                           __import__("os").environ else ""))
        return
    port = int(argv[argv.index("--port") + 1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    main()
