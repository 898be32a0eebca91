#!/usr/bin/env bash
# Three local Apache Kafka (KRaft) nodes in combined mode, for fault tests: kafka.sh per node.
#   cluster.sh up [id...]      start nodes 1 2 3 (or the given ones) and wait until all are ready
#   cluster.sh down [id...]    stop them
#   cluster.sh discard [id...] stop them at once (SIGKILL), for throw-away data
#   cluster.sh status [id...]  exit 0 when every one of them is running
# Environment (all optional): KAFKA_CLUSTER_BASE_PORT (19092: node N's broker listens on
# base+2(N-1), its controller on the port after that), KAFKA_CLUSTER_PORTS (six ports instead:
# broker and controller port of node 1, then 2, then 3), KAFKA_CLUSTER_DIR
# (deploy/kafka/.cache/cluster; node N's data in node-N), KAFKA_HEAP (384m),
# KAFKA_READY_TIMEOUT and KAFKA_EXTRA_PROPERTIES (appended after the cluster's own) as kafka.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
kafka="$here/kafka.sh"
dir=${KAFKA_CLUSTER_DIR:-$here/.cache/cluster}
base=${KAFKA_CLUSTER_BASE_PORT:-19092}
all_nodes=(1 2 3)
if [ -n "${KAFKA_CLUSTER_PORTS:-}" ]; then
  read -r -a ports <<<"${KAFKA_CLUSTER_PORTS//,/ }"
  if [ "${#ports[@]}" -ne 6 ]; then
    echo "cluster.sh: KAFKA_CLUSTER_PORTS needs six ports, not '$KAFKA_CLUSTER_PORTS'" >&2
    exit 2
  fi
else
  ports=()
  for offset in 0 1 2 3 4 5; do ports+=($((base + offset))); done
fi

broker_port() { echo "${ports[$((2 * ($1 - 1)))]}"; }
controller_port() { echo "${ports[$((2 * ($1 - 1) + 1))]}"; }

voters=""
for n in "${all_nodes[@]}"; do voters+="${voters:+,}$n@127.0.0.1:$(controller_port "$n")"; done

# Three replicas, two in sync: one node may die without losing an acknowledged record.
replication="default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2"

node() {
  local n=$1
  shift
  KAFKA_NODE_ID=$n \
    KAFKA_PORT=$(broker_port "$n") \
    KAFKA_CONTROLLER_PORT=$(controller_port "$n") \
    KAFKA_DATA_DIR="$dir/node-$n" \
    KAFKA_QUORUM_VOTERS=$voters \
    KAFKA_CLUSTER_ID=$cluster_id \
    KAFKA_HEAP=${KAFKA_HEAP:-384m} \
    KAFKA_EXTRA_PROPERTIES="$replication${KAFKA_EXTRA_PROPERTIES:+
$KAFKA_EXTRA_PROPERTIES}" \
    bash "$kafka" "$@"
}

up() {
  bash "$kafka" fetch
  mkdir -p "$dir"
  # One id for every node, made once: a node formatted with another id cannot join.
  [ -s "$dir/cluster.id" ] || bash "$kafka" cluster-id >"$dir/cluster.id"
  cluster_id=$(cat "$dir/cluster.id")
  # Concurrently: a node only reports it started once a majority of the controllers is up.
  local -A pids=()
  local n failed=()
  for n in "$@"; do
    node "$n" up &
    pids[$n]=$!
  done
  for n in "$@"; do
    wait "${pids[$n]}" || failed+=("$n")
  done
  if [ "${#failed[@]}" -gt 0 ]; then
    for n in "${failed[@]}"; do
      echo "cluster.sh: node $n failed to start; last lines of $dir/node-$n/kafka.log:" >&2
      tail -n 20 "$dir/node-$n/kafka.log" >&2 2>/dev/null || true
    done
    stop down "$@"
    exit 1
  fi
  echo "cluster.sh: nodes $* ready; bootstrap $(bootstrap)" >&2
}

# stop down|discard NODE...
stop() {
  # Concurrently too: the last node of a quorum stopped one by one has no majority left
  # to shut down cleanly with, and hangs until kafka.sh kills it 30 s later.
  local action=$1 n failed=0
  shift
  for n in "$@"; do node "$n" "$action" & done
  for n in "$@"; do wait -n || failed=1; done
  return "$failed"
}

status() {
  local n
  for n in "$@"; do node "$n" status || return 1; done
}

bootstrap() {
  local n list=""
  for n in "${all_nodes[@]}"; do list+="${list:+,}127.0.0.1:$(broker_port "$n")"; done
  echo "$list"
}

command=${1:-}
shift || true
nodes=("$@")
[ "${#nodes[@]}" -gt 0 ] || nodes=("${all_nodes[@]}")
for n in "${nodes[@]}"; do
  case "$n" in
    1 | 2 | 3) ;;
    *) echo "cluster.sh: no node '$n' (nodes are 1, 2, 3)" >&2; exit 2 ;;
  esac
done
cluster_id=""
case "$command" in
  up) up "${nodes[@]}" ;;
  down) stop down "${nodes[@]}" ;;
  discard) stop discard "${nodes[@]}" ;;
  status) status "${nodes[@]}" ;;
  *) echo "usage: cluster.sh up|down|discard|status [node id...]" >&2; exit 2 ;;
esac
