#!/usr/bin/env bash
# Two "hosts" on one machine: network namespaces joined by a veth pair, so that MPI ranks in
# different namespaces really talk TCP to each other (no shared memory: --mca btl tcp,self).
#
#   source scripts/two_hosts.sh; two_hosts_up [RATE]; two_hosts_mpirun NP ARGS...; two_hosts_down
#
# RATE (e.g. 1gbit) limits each direction of the link with tc's token bucket filter.
# mpirun runs in the first namespace; Open MPI starts the remote daemon through an rsh agent
# (this script, called as `two_hosts.sh agent HOST CMD…`) that runs it in the other namespace.
set -euo pipefail
export TWO_HOSTS_ID=${TWO_HOSTS_ID:-$$}
TWO_HOSTS_A=flashns${TWO_HOSTS_ID}a
TWO_HOSTS_B=flashns${TWO_HOSTS_ID}b
TWO_HOSTS_SELF=$(readlink -f "${BASH_SOURCE[0]}")

if [ "${1:-}" = agent ]; then
    host=$2; shift 2
    case "$host" in
        10.77.0.1) ns=$TWO_HOSTS_A ;;
        10.77.0.2) ns=$TWO_HOSTS_B ;;
        *) echo "two_hosts agent: unknown host $host" >&2; exit 1 ;;
    esac
    exec ip netns exec "$ns" /bin/sh -c "$*"
fi

two_hosts_up() {
    ip netns add "$TWO_HOSTS_A"
    ip netns add "$TWO_HOSTS_B"
    ip link add "${TWO_HOSTS_A}v" type veth peer name "${TWO_HOSTS_B}v"
    ip link set "${TWO_HOSTS_A}v" netns "$TWO_HOSTS_A"
    ip link set "${TWO_HOSTS_B}v" netns "$TWO_HOSTS_B"
    ip -n "$TWO_HOSTS_A" addr add 10.77.0.1/24 dev "${TWO_HOSTS_A}v"
    ip -n "$TWO_HOSTS_B" addr add 10.77.0.2/24 dev "${TWO_HOSTS_B}v"
    for ns in "$TWO_HOSTS_A" "$TWO_HOSTS_B"; do ip -n "$ns" link set lo up; done
    ip -n "$TWO_HOSTS_A" link set "${TWO_HOSTS_A}v" up
    ip -n "$TWO_HOSTS_B" link set "${TWO_HOSTS_B}v" up
    if [ -n "${1:-}" ]; then
        ip netns exec "$TWO_HOSTS_A" tc qdisc add dev "${TWO_HOSTS_A}v" root tbf rate "$1" burst 256kb latency 50ms
        ip netns exec "$TWO_HOSTS_B" tc qdisc add dev "${TWO_HOSTS_B}v" root tbf rate "$1" burst 256kb latency 50ms
    fi
    export TWO_HOSTS_FILE; TWO_HOSTS_FILE=$(mktemp)
    printf "10.77.0.1 slots=8\n10.77.0.2 slots=8\n" > "$TWO_HOSTS_FILE"
}

two_hosts_down() {
    ip netns del "$TWO_HOSTS_A" 2>/dev/null || true
    ip netns del "$TWO_HOSTS_B" 2>/dev/null || true
    rm -f "${TWO_HOSTS_FILE:-}"
}

# Bytes received on the second host's end of the link.
two_hosts_received_bytes() { ip netns exec "$TWO_HOSTS_B" cat "/sys/class/net/${TWO_HOSTS_B}v/statistics/rx_bytes"; }

# two_hosts_mpirun NP ARGS…: NP ranks placed round-robin over the two hosts.
two_hosts_mpirun() {
    local np=$1; shift
    ip netns exec "$TWO_HOSTS_A" mpirun --hostfile "$TWO_HOSTS_FILE" --map-by node -np "$np" \
        --mca plm_rsh_agent "$TWO_HOSTS_SELF agent" --mca btl tcp,self \
        --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 "$@"
}
