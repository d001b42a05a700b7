#!/usr/bin/env bash
# Installs the llama.cpp peer of scripts/bench_generate.py: llama-cpp-python built from its PyPI
# source with GGML_NATIVE=ON, so ggml uses every instruction set of this CPU (AVX-512 VNNI on the
# benchmark machine; a prebuilt wheel may not). Idempotent: does nothing when the version is
# already there. Needs cmake and a C++ compiler (the build takes ~10 minutes on 2 cores).
#
#   bash scripts/install_llama_cpp_python.sh [TARGET]
#
# TARGET defaults to $FLASH_LLAMA_CPP_PATH or ~/.cache/flash-peers/llama-cpp-python; the bench
# scripts look there (or on the normal Python path) for `import llama_cpp`.
set -euo pipefail
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
TARGET="${1:-${FLASH_LLAMA_CPP_PATH:-$HOME/.cache/flash-peers/llama-cpp-python}}"
if PYTHONPATH="$TARGET" python3 -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$VERSION')" 2>/dev/null; then
    echo "llama-cpp-python $VERSION already in $TARGET"
    exit 0
fi
# Its Python dependencies (numpy, typing-extensions, diskcache, jinja2) from PyPI as usual.
python3 -m pip install --quiet numpy typing-extensions diskcache jinja2
CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF" \
    python3 -m pip install --no-deps --no-binary llama-cpp-python --target "$TARGET" "llama-cpp-python==$VERSION"
echo "llama-cpp-python $VERSION installed in $TARGET"
