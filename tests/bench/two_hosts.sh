#!/usr/bin/env bash
# Two "hosts" on this machine: network namespaces maas-host0 and maas-host1 joined by a veth pair
# (10.77.0.1 <-> 10.77.0.2, optionally with `tc netem` delay), one maas-train rank in each, so the
# group trains across a real network interface rather than loopback. Removes the namespaces when it
# ends, however it ends. Needs root and iproute2.
#
#   sudo tests/bench/two_hosts.sh [--delay-ms 1] [--threads 1] [-- extra maas-train args]
#   e.g. tests/bench/two_hosts.sh -- --config configs/cifar10_fast.yaml --set train.epochs=1 --set data.train_limit=10240
#
# Prints both ranks' logs (rank 0's has the images/s and the all-reduce milliseconds per step).
set -euo pipefail
cd "$(dirname "$0")/../.."

delay_ms=0
threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --delay-ms) delay_ms="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--delay-ms N] [--threads N] [-- maas-train args]" >&2; exit 2 ;;
  esac
done
train_args=("$@")
[ ${#train_args[@]} -gt 0 ] || train_args=(--config configs/cifar10_cnn.yaml --set train.epochs=1 --set data.train_limit=10240)

out=$(mktemp -d /tmp/maas-two-hosts.XXXXXX)
cleanup() {
  ip netns del maas-host0 2>/dev/null || true
  ip netns del maas-host1 2>/dev/null || true
}
trap cleanup EXIT
cleanup  # leftovers of an earlier run that was killed -9

ip netns add maas-host0
ip netns add maas-host1
ip link add maas-veth0 netns maas-host0 type veth peer name maas-veth1 netns maas-host1
ip -n maas-host0 addr add 10.77.0.1/24 dev maas-veth0
ip -n maas-host1 addr add 10.77.0.2/24 dev maas-veth1
for i in 0 1; do
  ip -n maas-host$i link set lo up
  ip -n maas-host$i link set maas-veth$i up
done
if [ "$delay_ms" != 0 ]; then
  for i in 0 1; do
    ip netns exec maas-host$i tc qdisc add dev maas-veth$i root netem delay "${delay_ms}ms" ||
      { echo "two_hosts.sh: tc netem is not available in this kernel (module sch_netem); run without --delay-ms" >&2; exit 1; }
  done
fi

common=(WORLD_SIZE=2 LOCAL_WORLD_SIZE=1 LOCAL_RANK=0 MASTER_ADDR=10.77.0.1 MASTER_PORT=29511)
for rank in 1 0; do
  ip netns exec maas-host$rank env "${common[@]}" RANK=$rank GLOO_SOCKET_IFNAME=maas-veth$rank \
    build/bin/maas-train "${train_args[@]}" --out "$out/run" --set "train.threads=$threads" 2> "$out/rank$rank.log" &
  pids[$rank]=$!
done
status=0
wait "${pids[0]}" || status=$?
wait "${pids[1]}" || status=$?
for rank in 0 1; do echo "== rank $rank (host maas-host$rank, delay ${delay_ms} ms)"; cat "$out/rank$rank.log"; done
rm -rf "$out"
exit $status
