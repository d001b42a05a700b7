#!/usr/bin/env bash
# Installs the llama.cpp peer of scripts/bench_generate.py: llama-cpp-python built from its PyPI
# source with GGML_NATIVE=ON, so ggml uses every instruction set of this CPU (AVX-512 VNNI on the
# benchmark machine; a prebuilt wheel may not). Idempotent: does nothing when the version is
# already there. Needs cmake and a C++ compiler (the build takes ~10 minutes on 2 cores).
#
#   bash scripts/install_llama_cpp_python.sh [TARGET]
#   FLASH_PEER_ISA=avx2 bash scripts/install_llama_cpp_python.sh   # the AVX2 peer
#
# TARGET defaults to $FLASH_LLAMA_CPP_PATH or ~/.cache/flash-peers/llama-cpp-python; the bench
# scripts look there (or on the normal Python path) for `import llama_cpp`.
#
# FLASH_PEER_ISA=avx2 builds ggml for AVX2/FMA/F16C only (GGML_NATIVE=OFF, no AVX-512, no VNNI)
# into ~/.cache/flash-peers/llama-cpp-python-avx2 by default: the fair peer of a
# `FLASH_MARCH=x86-64-v3` flash build on an AVX-512 machine
# (`FLASH_LLAMA_CPP_PATH=~/.cache/flash-peers/llama-cpp-python-avx2 python3 scripts/bench_generate.py`).
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
ISA="${FLASH_PEER_ISA:-native}"
case "$ISA" in
    native) ISA_ARGS="-DGGML_NATIVE=ON"; DEFAULT_TARGET="$HOME/.cache/flash-peers/llama-cpp-python" ;;
    avx2) ISA_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF"
          DEFAULT_TARGET="$HOME/.cache/flash-peers/llama-cpp-python-avx2" ;;
    *) echo "FLASH_PEER_ISA must be 'native' or 'avx2', got '$ISA'" >&2; exit 2 ;;
esac
TARGET="${1:-${FLASH_LLAMA_CPP_PATH:-$DEFAULT_TARGET}}"
if PYTHONPATH="$TARGET" python3 -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
    echo "llama-cpp-python $VERSION already in $TARGET"
    exit 0
fi
# Its Python dependencies (numpy, typing-extensions, diskcache, jinja2) from PyPI as usual.
python3 -m pip install --quiet numpy typing-extensions diskcache jinja2
CMAKE_ARGS="$ISA_ARGS -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    python3 -m pip install --no-deps --no-binary llama-cpp-python --target "$TARGET" "llama-cpp-python==$VERSION"
echo "llama-cpp-python $VERSION ($ISA) installed in $TARGET"
