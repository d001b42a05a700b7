#!/usr/bin/env python3
"""Reference outputs for the LLaMA/GGUF tests, made by implementations written elsewhere.

Writes Tests/TransformerTests/Fixtures/llama/:
  quant_blocks.json   random blocks of every supported ggml type (base64) and their values as
                      decoded by gguf-py (ggml's reference decoder in Python)
  tokenizer.json      token ids of several texts from Hugging Face transformers' tokenizer
                      built from the GGUF's own metadata (and from llama.cpp's when
                      installed), and the chat-template prompt
  logits.json         for several prompts: top-8 next-token logits at every position and the
                      32-token greedy continuation from transformers' LlamaForCausalLM on the
                      same GGUF (dequantised to Float32), plus llama.cpp's (llama-cpp-python)
                      top-1 tokens and greedy continuation when it is installed

Needs: pip install torch transformers gguf accelerate  (optional: llama-cpp-python)
Usage: python3 scripts/make_llama_fixtures.py [MODEL.gguf] [--quant-only]
"""
import base64
import json
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Tests", "TransformerTests", "Fixtures", "llama")
CACHE = os.environ.get("FLASH_MODEL_CACHE", os.path.expanduser("~/.cache/flash-models"))
MODEL = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  Leading spaces,\ttabs\nand newlines\n\n  trailing  ",
    "Numbers: 3.14159, 2026, 1e-5 and 100,000.",
    "Unicode: café, naïve, Ελληνικά, 日本語, emoji 🦙🚀, €½²",
    "don't I'LL we've they're it's",
    "def f(x):\n    return x**2  # square",
    "<|im_start|>user\nHi<|im_end|>",
    "bytes missing from the vocabulary are dropped: a\x04b\x13c",
]

PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a little",
    "def fibonacci(n):",
    "Water boils at a temperature of",
]
TOP = 8
CONTINUE = 32


def quant_blocks(rng):
    from gguf import GGMLQuantizationType as T
    from gguf import quants
    cases = []
    # type, block elements, block bytes, byte offsets of Float16 scale fields (kept sane)
    layouts = [
        (T.Q4_0, 32, 18, [0]), (T.Q4_1, 32, 20, [0, 2]), (T.Q5_0, 32, 22, [0]), (T.Q5_1, 32, 24, [0, 2]),
        (T.Q8_0, 32, 34, [0]), (T.Q4_K, 256, 144, [0, 2]), (T.Q5_K, 256, 176, [0, 2]), (T.Q6_K, 256, 210, [208]),
        (T.F16, 1, 2, None), (T.BF16, 1, 2, None),
    ]
    rows, columns = 2, 256
    for qtype, block, nbytes, scales in layouts:
        if scales is None:
            values = rng.standard_normal((rows, columns)).astype(np.float32)
            data = values.astype(np.float16).view(np.uint8) if qtype == T.F16 else \
                (values.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
            data = data.reshape(rows, -1)
        else:
            data = rng.integers(0, 256, size=(rows, columns // block, nbytes), dtype=np.uint8)
            for offset in scales:
                d = rng.uniform(0.001, 0.05, size=(rows, columns // block)).astype(np.float16)
                data[:, :, offset:offset + 2] = d.view(np.uint8).reshape(rows, columns // block, 2)
            data = data.reshape(rows, -1)
        decoded = quants.dequantize(data, qtype).reshape(rows, columns).astype(np.float64)
        x = np.round(rng.standard_normal(columns), 4).astype(np.float32)
        cases.append({
            "type": qtype.name, "rows": rows, "columns": columns,
            "data": base64.b64encode(data.tobytes()).decode(),
            "values": [round(float(v), 6) for v in decoded.reshape(-1)],
            "x": [round(float(v), 4) for v in x],
            "product": [round(float(v), 6) for v in decoded @ x.astype(np.float64)],
        })
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(1234)
    with open(os.path.join(OUT, "quant_blocks.json"), "w") as f:
        json.dump({"source": "gguf-py quants.dequantize", "cases": quant_blocks(rng)}, f)
    if "--quant-only" in sys.argv:
        return

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = os.path.dirname(MODEL), os.path.basename(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+2?"}],
                                         tokenize=False, add_generation_prompt=True)
    llama = None
    try:
        import llama_cpp
        llama = llama_cpp.Llama(model_path=MODEL, n_ctx=256, logits_all=True, verbose=False, n_threads=2)
    except Exception as error:  # optional second reference
        print(f"llama-cpp-python not used: {error}", file=sys.stderr)

    def token_case(text):
        case = {"text": text, "ids": tokenizer.encode(text, add_special_tokens=False)}
        if llama is not None:
            case["llamacpp_ids"] = llama.tokenize(text.encode(), add_bos=False, special=True)
        return case

    with open(os.path.join(OUT, "tokenizer.json"), "w") as f:
        json.dump({
            "source": "transformers AutoTokenizer(gguf_file=...); llamacpp_ids: llama-cpp-python",
            "cases": [token_case(t) for t in TEXTS],
            "chat": {"user": "What is 2+2?", "prompt": chat,
                     "ids": tokenizer.encode(chat, add_special_tokens=False)},
        }, f, ensure_ascii=False, indent=1)

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    cases = []
    for prompt in PROMPTS:
        ids = tokenizer.encode(prompt, add_special_tokens=False)
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
            top = logits.topk(TOP, dim=-1)
            # Greedy by hand (generate() would stop at, or with min_new_tokens forbid, EOS).
            sequence = list(ids)
            step = model(torch.tensor([ids]), use_cache=True)
            for _ in range(CONTINUE):
                sequence.append(int(step.logits[0, -1].argmax()))
                step = model(torch.tensor([[sequence[-1]]]), past_key_values=step.past_key_values, use_cache=True)
        case = {
            "prompt": prompt, "ids": ids,
            "top_ids": top.indices.tolist(), "top_logits": [[round(v, 5) for v in row] for row in top.values.tolist()],
            "greedy": sequence[len(ids):],
        }
        if llama is not None:
            llama.reset()
            llama.eval(ids)
            scores = np.array(llama.scores[:len(ids)])
            case["llamacpp_top1"] = scores.argmax(axis=-1).tolist()
            case["llamacpp_top_logits"] = [[round(float(s[i]), 5) for i in row] for s, row in zip(scores, top.indices.tolist())]
            tokens = []
            for token in llama.generate(ids, temp=0.0, top_k=1, reset=True):
                tokens.append(int(token))
                if len(tokens) == CONTINUE:
                    break
            case["llamacpp_greedy"] = tokens
        cases.append(case)
    with open(os.path.join(OUT, "logits.json"), "w") as f:
        json.dump({"source": "transformers LlamaForCausalLM(gguf_file=...) float32", "model": name,
                   "cases": cases}, f, indent=1)
    print(f"wrote fixtures to {OUT}")


if __name__ == "__main__":
    main()
