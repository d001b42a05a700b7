#!/usr/bin/env bash
# Multi-rank tests under a real Open MPI launcher (run by .ci/run after installing Open MPI).
# 0. ring attention alone (RingAttentionGroupTests from the test bundle) on 2 and 4 ranks;
# the other checks train with the real `flash train` and compare checkpoints and logs:
#   1. data parallel P = 2, 4 ranks × B sequences equals one process with P·B sequences,
#      with and without accumulation and ZeRO-1 (and a negative control that must differ);
#   2. ZeRO-1 equals ZeRO-0; context parallelism (ring attention over 2 ranks, alone and
#      with 2 data-parallel groups) equals one process;
#   3. ranks started with different arguments are refused at start, naming the rank;
#   4. a rank killed mid-run ends the whole job within seconds, the last checkpoint resumes.
# Tolerances: see Tests/DistributedTests/DataParallelTests.swift (the summation order differs,
# so not bitwise; 2e-5 absolute on parameters and moments after 5 AdamW steps at lr 1e-3).
set -euo pipefail
cd "$(dirname "$0")/.."
FLASH=${FLASH:-.build/release/flash}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# Containers often forbid the cross-memory-attach single-copy path of the shared-memory transport.
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN="mpirun --oversubscribe -np"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
COMMON=(--preset tiny --steps 5 --warmup 1 --eval-every 5 --threads 1 --seed 7 --validation-fraction 0.05)
TOL=2e-5
fail() { echo "test_mpi: FAILED: $*" >&2; exit 1; }

run() {  # run NAME RANKS ARGS...: trains into $WORK/NAME with a log
    local name=$1 ranks=$2; shift 2
    if [ "$ranks" = 1 ]; then
        timeout 300 "$FLASH" train "${COMMON[@]}" --out "$WORK/$name" --log "$WORK/$name.jsonl" "$@" > "$WORK/$name.out" 2>&1 \
            || { cat "$WORK/$name.out"; fail "$name"; }
    else
        timeout 300 $MPIRUN "$ranks" "$FLASH" train "${COMMON[@]}" --out "$WORK/$name" --log "$WORK/$name.jsonl" "$@" > "$WORK/$name.out" 2>&1 \
            || { cat "$WORK/$name.out"; fail "$name"; }
    fi
    python3 - "$WORK/$name.jsonl" "$ranks" <<'PY' || fail "log of $1"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert len(lines) == 5, len(lines)
assert all(l["world_size"] == int(sys.argv[2]) for l in lines), lines[0]
PY
}
same() {  # same A B: checkpoints and losses agree
    echo "== $1 vs $2"
    python3 scripts/compare_checkpoints.py "$WORK/$1" "$WORK/$2" --tolerance $TOL \
        --log-a "$WORK/$1.jsonl" --log-b "$WORK/$2.jsonl" || fail "$1 differs from $2"
}

echo "== ring attention alone over real ranks (RingAttentionGroupTests: forward and backward against the Float64 reference)"
TESTS=${TESTS:-.build/release/FlashTransformerPackageTests.xctest}
[ -x "$TESTS" ] || fail "no test bundle at $TESTS (swift build -c release --build-tests first)"
for ranks in 2 4; do
    timeout 300 $MPIRUN "$ranks" --bind-to none "$TESTS" FlashAttentionTests.RingAttentionGroupTests > "$WORK/ring$ranks.out" 2>&1 \
        || { cat "$WORK/ring$ranks.out"; fail "ring attention over $ranks ranks"; }
    # Every rank ran the check over the MPI world (not the threads fallback) and passed.
    [ "$(grep -c "ring attention over $ranks MPI ranks" "$WORK/ring$ranks.out")" = "$ranks" ] \
        || { cat "$WORK/ring$ranks.out"; fail "the ring test did not run on $ranks MPI ranks"; }
    [ "$(grep -c "Executed 2 tests, with 0 failures" "$WORK/ring$ranks.out")" -ge "$ranks" ] \
        || { cat "$WORK/ring$ranks.out"; fail "ring test results over $ranks ranks"; }
    echo "ring attention over $ranks MPI ranks: passed on every rank"
done

run single4 1 --batch 4
run single4acc 1 --batch 4 --accumulate 2
run dp2 2 --batch 2
run dp4 4 --batch 1
run dp2acc 2 --batch 2 --accumulate 2
run dp2zero 2 --batch 2 --zero 1
run dp4zeroacc 4 --batch 1 --accumulate 2 --zero 1
run dp2zeroacc 2 --batch 2 --accumulate 2 --zero 1
run cp2 2 --batch 4 --context-parallel 2
run cp2dp2 4 --batch 2 --context-parallel 2 --zero 1 --position rotary
run single4rotary 1 --batch 4 --position rotary
same dp2 single4
same dp4 single4
same dp2acc single4acc
same dp2zero single4
same dp4zeroacc single4acc
same dp2zeroacc dp2acc
same cp2 single4
same cp2dp2 single4rotary
# Negative control: a different global batch must not pass the same comparison.
run single2 1 --batch 2
if python3 scripts/compare_checkpoints.py "$WORK/dp2" "$WORK/single2" --tolerance $TOL > /dev/null; then
    fail "the comparison cannot tell a batch of 2 from a global batch of 4"
fi
grep -q "2 data-parallel groups × 2 sequences (global batch 4), ZeRO-1" "$WORK/dp2zero.out" || fail "dp2zero banner"
[ "$(grep -c '^step 5/5' "$WORK/dp4.out")" = 1 ] || fail "only rank 0 prints progress"

echo "== two hosts (network namespaces joined by a veth pair, TCP only)"
source scripts/two_hosts.sh
if ip netns add "flashprobe$$" 2> /dev/null; then
    ip netns del "flashprobe$$"
    trap 'two_hosts_down; rm -rf "$WORK"' EXIT
    two_hosts_up
    before=$(two_hosts_received_bytes)
    timeout 300 bash -c "source scripts/two_hosts.sh; two_hosts_mpirun 2 $FLASH train ${COMMON[*]} --batch 2 --zero 1 --out $WORK/hosts --log $WORK/hosts.jsonl" \
        > "$WORK/hosts.out" 2>&1 || { cat "$WORK/hosts.out"; fail "two-host run"; }
    received=$(( $(two_hosts_received_bytes) - before ))
    two_hosts_down
    same hosts single4
    # ZeRO-1 on 2 ranks moves at least half the gradient and half the parameters each step.
    parameters=$(python3 -c "import json; print(sum(__import__('math').prod(v['shape']) for k, v in json.loads(open('$WORK/hosts/model.safetensors','rb').read()[8:8+int.from_bytes(open('$WORK/hosts/model.safetensors','rb').read(8),'little')]).items() if k != '__metadata__'))")
    echo "host 2 received $received bytes over the veth link ($parameters parameters, 5 steps)"
    [ "$received" -ge $(( 5 * 4 * parameters )) ] || fail "too little traffic between the hosts: $received bytes"
else
    echo "test_mpi: SKIPPED the two-host test: cannot create network namespaces here (needs root with CAP_NET_ADMIN)" >&2
fi

echo "== mismatched configuration"
set +e
timeout 120 mpirun --oversubscribe -np 1 "$FLASH" train "${COMMON[@]}" --out "$WORK/mismatch" --batch 2 \
    : -np 1 "$FLASH" train "${COMMON[@]}" --out "$WORK/mismatch" --batch 2 --lr 2e-3 > "$WORK/mismatch.out" 2>&1
status=$?
set -e
[ $status -ne 0 ] && [ $status -ne 124 ] || { cat "$WORK/mismatch.out"; fail "mismatched ranks were not refused (status $status)"; }
grep -q "the configuration .* of rank 1 differs from rank 0's" "$WORK/mismatch.out" || { cat "$WORK/mismatch.out"; fail "mismatch message"; }
[ ! -e "$WORK/mismatch" ] || fail "a refused run wrote a checkpoint"

echo "== --context-parallel must divide the ranks"
if timeout 120 $MPIRUN 2 "$FLASH" train "${COMMON[@]}" --out "$WORK/cp" --context-parallel 3 > "$WORK/cp.out" 2>&1; then
    fail "--context-parallel 3 on 2 ranks was accepted"
fi
# Printed once, by rank 0 (from every rank the two lines could interleave).
[ "$(grep -c -- "--context-parallel 3 must divide the number of ranks (2)" "$WORK/cp.out")" = 1 ] || { cat "$WORK/cp.out"; fail "context-parallel message"; }

echo "== killed rank"
$MPIRUN 2 "$FLASH" train --preset tiny --steps 3000 --warmup 1 --eval-every 5 --threads 1 --seed 7 \
    --batch 2 --zero 1 --out "$WORK/killed" --log "$WORK/killed.jsonl" > "$WORK/killed.out" 2>&1 &
launcher=$!
for _ in $(seq 1 600); do [ -f "$WORK/killed/training.json" ] && break; sleep 0.1; done
[ -f "$WORK/killed/training.json" ] || { cat "$WORK/killed.out"; fail "no checkpoint before the kill"; }
# mpirun starts the local ranks as its own children; kill the last one.
ranks=$(pgrep -P $launcher -d ' ' || true)
victim=$(echo $ranks | awk '{print $NF}')
[ -n "$victim" ] || { kill -9 $launcher; fail "no rank processes under mpirun ($launcher)"; }
start=$(date +%s)
kill -9 "$victim"
# A watchdog so that a hang fails the test instead of the CI job.
( sleep 60; kill -9 $launcher 2>/dev/null ) &
watchdog=$!
set +e
wait $launcher
status=$?
kill $watchdog 2>/dev/null
set -e
elapsed=$(( $(date +%s) - start ))
echo "job ended $elapsed s after the kill, status $status"
[ $status -ne 0 ] || fail "the job succeeded after a rank was killed"
[ $elapsed -le 30 ] || fail "the job took $elapsed s to end after a rank was killed"
grep -Eq "rank [0-9]+ .*(signal 9|Killed)|process rank [0-9]+" "$WORK/killed.out" || { cat "$WORK/killed.out"; fail "no message naming the killed rank"; }
grep -E "rank [0-9]+" "$WORK/killed.out" | head -3
# The checkpoint left behind is intact and resumes (here on one process with the same global batch).
step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$WORK/killed/training.json")
set +e
timeout 15 "$FLASH" train --out "$WORK/killed" --resume --threads 1 > "$WORK/resumed.out" 2>&1
status=$?
set -e
{ [ $status -eq 0 ] || [ $status -eq 124 ]; } && grep -q "resuming $WORK/killed at step $step" "$WORK/resumed.out" \
    || { cat "$WORK/resumed.out"; fail "resume after the kill (status $status)"; }
echo "test_mpi: all multi-rank checks passed"
