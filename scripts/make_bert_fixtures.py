#!/usr/bin/env python3
"""Reference outputs for the BERT sentence encoder tests, made with sentence-transformers.

Writes Tests/TransformerTests/Fixtures/bert/minilm_reference.json:
  tokenizer_cases: [{text, ids}]        ids = sentence-transformers' model.tokenize (with
                                         [CLS]/[SEP], truncated at max_seq_length)
  embedding_cases: [{text, ids, embedding}]  embedding = model.encode(text) (mean pooling, L2)

Setup (once):  pip install sentence-transformers transformers   (PyTorch CPU already installed)
Run:           python3 scripts/make_bert_fixtures.py [MODEL_DIR]
MODEL_DIR defaults to $FLASH_MODEL_CACHE/all-MiniLM-L6-v2 (cache from scripts/fetch_models.sh).
The model is loaded from the local directory only (HF_HUB_OFFLINE=1).
"""
import json
import os
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("FLASH_MODEL_CACHE", os.path.expanduser("~/.cache/flash-models"))
MODEL_DIR = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "all-MiniLM-L6-v2")
OUT = os.path.join(ROOT, "Tests", "TransformerTests", "Fixtures", "bert", "minilm_reference.json")

LONG_PARAGRAPH = (
    "FlashAttention computes exact attention without materialising the full score matrix: "
    "it tiles queries, keys and values so that each block fits in fast memory, keeps a running "
    "maximum and normaliser for the softmax, and rescales partial outputs as new blocks arrive. "
)

# Sentences embedded end to end (tokens + embeddings).
EMBEDDING_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on stage.",
    "Hello, world! How's it going?? (Fine, thanks...)",
    "Crème brûlée, façade, naïve café — über déjà vu.",
    "In 2024, the GDP grew by 3.14% to $1,234,567.89 (approx.).",
    "東京は日本の首都です。北京是中国的首都。",
    "Ünïcödé ÀÇÇÉÑTS and ΣΊΣΥΦΟΣ İstanbul straße",
    "e-mail: someone@example.com; url: https://example.org/a?b=c&d=e#f",
    "short",
    "tabs\tand\nnewlines\r\n   and  multiple   spaces",
    "supercalifragilisticexpialidocious" * 4 + " is a very long word",
    (LONG_PARAGRAPH * 12).strip(),  # far more than 256 word pieces: truncated
    "Emoji 😀🚀 and symbols ©®™ ∑∫√ ≤≥ ← →",
    "[CLS] literal special tokens [SEP] inside [MASK] text",
]

# Extra texts for the tokenizer alone.
TOKENIZER_TEXTS = EMBEDDING_TEXTS + [
    "",
    "   ",
    "UPPER lower MiXeD",
    "naïve résumé coöperate",
    "Ελληνικά κείμενα με τόνους: ΆΈΉ",
    "Русский текст: Привет, мир!",
    "مرحبا بالعالم",
    "हिन्दी पाठ में मात्राएँ",
    "한국어 문장입니다",
    "ひらがな カタカナ 漢字",
    "ﬁnancial ﬂow ½ ² ℌ Ⅻ ①",
    "zero\u200bwidth soft\u00adhyphen nul\x00char bom\ufeffmark repl\ufffdchar",
    "control\x07bell \x1b[31mred\x1b[0m",
    "line\u2028separator paragraph\u2029sep nbsp\u00a0space ideographic\u3000space",
    "quotes “curly” ‘single’ «guillemets» „low“",
    "dashes – — ‐ and ellipsis … and bullets •",
    "a\U0002B820b a\U0002B920b a\U00020000b",
    "x" * 100,
    "y" * 101,
    "unaffable unwanted running",
    "don't can't won't y'all",
    "3.14159 1e-10 0xFF 1,000,000 12:30pm 2024-01-01",
    "C++ & C# <html> {json: [1, 2]} a_b a|b a~b a^b `code`",
    "[cls] lower-case specials are ordinary text [SEP][SEP]",
    "#hashtag @mention ##subword",
    "Ⓐ ⓑ 𝐀𝐁𝐂 𝔸",
    "İ ı ẞ ß ǅ",
    ("word " * 300).strip(),
]


def main():
    model = SentenceTransformer(MODEL_DIR, device="cpu")
    max_len = model.max_seq_length

    def ids_of(text):
        features = model.tokenize([text])
        return features["input_ids"][0].tolist()

    tokenizer_cases = [{"text": t, "ids": ids_of(t)} for t in TOKENIZER_TEXTS]
    with torch.no_grad():
        embeddings = model.encode(EMBEDDING_TEXTS, batch_size=1, convert_to_numpy=True)
    embedding_cases = [
        {"text": t, "ids": ids_of(t), "embedding": [float(f"{v:.7g}") for v in e.tolist()]}
        for t, e in zip(EMBEDDING_TEXTS, embeddings)
    ]
    result = {
        "model": os.path.basename(os.path.normpath(MODEL_DIR)),
        "max_seq_length": max_len,
        "made_with": {
            "sentence_transformers": sentence_transformers.__version__,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
        "tokenizer_cases": tokenizer_cases,
        "embedding_cases": embedding_cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=True, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(tokenizer_cases)} tokenizer cases, {len(embedding_cases)} embeddings, max_seq_length {max_len}")


if __name__ == "__main__":
    main()
