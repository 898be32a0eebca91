#!/usr/bin/env bash
# Local Apache Kafka (KRaft) from Maven Central jars.
#   kafka.sh fetch   download the jars into .cache/lib (once; later runs reuse them)
#   kafka.sh up      format storage if needed, start the broker, wait until it is ready
#   kafka.sh down    stop the broker started by `up`
#   kafka.sh status  exit 0 when the broker of this data dir is running
#   kafka.sh cluster-id  print a new random cluster id (for nodes that must share one)
# Environment (all optional): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_NODE_ID (1), KAFKA_DATA_DIR (deploy/kafka/.cache/data/node-<id>),
# KAFKA_READY_TIMEOUT (90 seconds), KAFKA_HEAP (512m); for a node of a cluster (cluster.sh)
# KAFKA_QUORUM_VOTERS (id@host:port,...), KAFKA_CLUSTER_ID (used when formatting) and
# KAFKA_EXTRA_PROPERTIES (lines appended to server.properties; later keys win).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
lib="$here/.cache/lib"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-9093}
node_id=${KAFKA_NODE_ID:-1}
data=${KAFKA_DATA_DIR:-$here/.cache/data/node-$node_id}
ready_timeout=${KAFKA_READY_TIMEOUT:-90}
heap=${KAFKA_HEAP:-512m}
pidfile="$data/kafka.pid"
logfile="$data/kafka.log"

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "kafka.sh: '$1' not found: install $2 (Debian: apt-get install $3)" >&2
    exit 1
  }
}

fetch() {
  # The marker names the pom it was fetched for: a version change fetches afresh.
  local wanted
  wanted=$(cksum <"$here/pom.xml")
  if [ -f "$lib/.complete" ] && [ "$(cat "$lib/.complete")" = "$wanted" ]; then return 0; fi
  need mvn "Apache Maven" maven
  echo "kafka.sh: fetching Apache Kafka jars from Maven Central into $lib" >&2
  rm -rf "$lib"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies >&2
  echo "$wanted" >"$lib/.complete"
}

new_cluster_id() {
  # The tool logs a line to stdout before the id: keep only the id.
  "${java_cmd[@]}" kafka.tools.StorageTool random-uuid | tail -n 1
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

java_cmd=(java -Xms128m "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$lib/*")

up() {
  need java "a Java 17 runtime" openjdk-17-jre-headless
  fetch
  mkdir -p "$data"
  if running; then
    echo "kafka.sh: already running (pid $(cat "$pidfile"), 127.0.0.1:$port)" >&2
    return 0
  fi
  local props="$data/server.properties"
  cp "$here/server.properties" "$props"
  cat >>"$props" <<PROPS
node.id=$node_id
controller.quorum.voters=${KAFKA_QUORUM_VOTERS:-$node_id@127.0.0.1:$controller_port}
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
log.dirs=$data/logs
PROPS
  if [ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]; then
    printf '%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$props"
  fi
  if [ ! -f "$data/logs/meta.properties" ]; then
    local cluster_id=${KAFKA_CLUSTER_ID:-}
    if [ -z "$cluster_id" ]; then
      [ -f "$data/cluster.id" ] || new_cluster_id >"$data/cluster.id"
      cluster_id=$(cat "$data/cluster.id")
    fi
    "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" --ignore-formatted >>"$data/format.log" 2>&1 || {
      cat "$data/format.log" >&2
      exit 1
    }
  fi
  : >"$logfile"
  # setsid: the broker must not die with the shell that started it, nor take its signals.
  setsid "${java_cmd[@]}" kafka.Kafka "$props" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  local waited=0
  # The port opens before the broker can serve; this line is logged once it can.
  until grep -q "Kafka Server started" "$logfile"; do
    if ! running; then
      echo "kafka.sh: broker exited during start-up; last log lines:" >&2
      tail -n 30 "$logfile" >&2
      rm -f "$pidfile"
      exit 1
    fi
    if [ "$waited" -ge $((ready_timeout * 10)) ]; then
      echo "kafka.sh: broker not ready after ${ready_timeout}s; see $logfile" >&2
      down
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  echo "kafka.sh: ready on 127.0.0.1:$port (pid $(cat "$pidfile"), log $logfile)" >&2
}

down() {
  if ! running; then
    rm -f "$pidfile"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pidfile"
  echo "kafka.sh: stopped (pid $pid)" >&2
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  status) running ;;
  cluster-id)
    need java "a Java 17 runtime" openjdk-17-jre-headless
    fetch
    new_cluster_id
    ;;
  *) echo "usage: kafka.sh fetch|up|down|status|cluster-id" >&2; exit 2 ;;
esac
