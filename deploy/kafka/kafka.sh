#!/usr/bin/env bash
# Local Apache Kafka (KRaft) from Maven Central jars.
#   kafka.sh fetch   download the jars into .cache/lib (once; later runs reuse them)
#   kafka.sh up      format storage if needed, start the broker, wait until it is ready
#   kafka.sh down    stop the broker started by `up`
#   kafka.sh discard stop it at once (SIGKILL): for a throw-away broker whose data goes next
#   kafka.sh status  exit 0 when the broker of this data dir is running
#   kafka.sh cluster-id  print a new random cluster id (for nodes that must share one)
# Environment (all optional): KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
# KAFKA_NODE_ID (1), KAFKA_DATA_DIR (deploy/kafka/.cache/data/node-<id>),
# KAFKA_READY_TIMEOUT (90 seconds), KAFKA_HEAP (512m), KAFKA_JVM_OPTS (more JVM options,
# e.g. -XX:TieredStopAtLevel=1: half the CPU to start, as the tests' brokers use); for a
# node of a cluster (cluster.sh) KAFKA_QUORUM_VOTERS (id@host:port,...), KAFKA_CLUSTER_ID
# (used when formatting) and KAFKA_EXTRA_PROPERTIES (lines appended to server.properties;
# later keys win).
#
# A secured client listener (the default is one PLAINTEXT listener on KAFKA_PORT, as above):
#   KAFKA_SECURITY  plaintext (default) | ssl | sasl_ssl | sasl_plaintext: the protocol of the
#     client listener on KAFKA_PORT. Otherwise than plaintext, brokers talk to each other on a
#     second, PLAINTEXT listener INTERNAL on 127.0.0.1:KAFKA_INTERNAL_PORT (default: the port
#     after KAFKA_CONTROLLER_PORT); the controller listener stays PLAINTEXT.
#   With ssl / sasl_ssl:
#     KAFKA_SSL_KEYSTORE_LOCATION  the broker's key and certificate chain (required); for the
#       default type PEM one file holding an unencrypted PKCS#8 key ("BEGIN PRIVATE KEY") and
#       the certificate chain, server certificate first
#     KAFKA_SSL_KEYSTORE_TYPE      PEM (default), PKCS12 or JKS
#     KAFKA_SSL_KEYSTORE_PASSWORD  the store password (PKCS12/JKS only; Kafka refuses one for PEM)
#     KAFKA_SSL_KEY_PASSWORD       the key's password (an encrypted PEM key, or a JKS key)
#     KAFKA_SSL_CLIENT_AUTH        none (default) | requested | required: client certificates
#     KAFKA_SSL_TRUSTSTORE_LOCATION  the CA certificates (PEM) client certificates must chain to
#       (needed when KAFKA_SSL_CLIENT_AUTH is not none)
#   With sasl_ssl / sasl_plaintext:
#     KAFKA_SCRAM_USERS     name=password,... (required): the users, created as SCRAM
#       credentials when the storage is formatted (so only on the first `up` of a data dir) and
#       also accepted by PLAIN. Names: letters, digits and ._@-; passwords also +/=~ (no
#       commas, quotes or spaces). Passwords appear on the format command line and in
#       KAFKA_DATA_DIR/server.properties (mode 600): for tests and local use.
#     KAFKA_SASL_MECHANISMS  the enabled mechanisms, of SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN
#       (default: all three)
# Clients then use security_protocol=SASL_SSL (or SSL, SASL_PLAINTEXT), e.g. with aiokafka
# sasl_mechanism="SCRAM-SHA-512", sasl_plain_username/_password, and
# ssl_context=aiokafka.helpers.create_ssl_context(cafile=<the CA>).
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
security=${KAFKA_SECURITY:-plaintext}
internal_port=${KAFKA_INTERNAL_PORT:-$((controller_port + 1))}

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
  # What `kafka-storage.sh random-uuid` prints (16 random bytes, base64url without padding,
  # not starting with "-"), without starting a JVM for it.
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $id == -* ]] || break
  done
  echo "$id"
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# Settings of the secured client listener (KAFKA_SECURITY other than plaintext); plain bash,
# so that a missing tool is still reported first. Fills users, mechanisms and scram_args.
users=()
mechanisms=()
scram_args=()
check_security() {
  local fail="kafka.sh: KAFKA_SECURITY=$security:"
  case "$security" in
    plaintext) return 0 ;;
    ssl | sasl_ssl | sasl_plaintext) ;;
    *)
      echo "kafka.sh: KAFKA_SECURITY must be plaintext, ssl, sasl_ssl or sasl_plaintext, not '$security'" >&2
      exit 2
      ;;
  esac
  if [ "$internal_port" = "$port" ] || [ "$internal_port" = "$controller_port" ]; then
    echo "$fail KAFKA_INTERNAL_PORT ($internal_port) must differ from the client and controller ports" >&2
    exit 2
  fi
  if [[ $security == *ssl ]]; then
    if [ -z "${KAFKA_SSL_KEYSTORE_LOCATION:-}" ] || [ ! -r "$KAFKA_SSL_KEYSTORE_LOCATION" ]; then
      echo "$fail KAFKA_SSL_KEYSTORE_LOCATION must name a readable key store, not '${KAFKA_SSL_KEYSTORE_LOCATION:-}'" >&2
      exit 2
    fi
    case "${KAFKA_SSL_CLIENT_AUTH:-none}" in
      none) ;;
      requested | required)
        if [ -z "${KAFKA_SSL_TRUSTSTORE_LOCATION:-}" ] || [ ! -r "$KAFKA_SSL_TRUSTSTORE_LOCATION" ]; then
          echo "$fail KAFKA_SSL_CLIENT_AUTH=$KAFKA_SSL_CLIENT_AUTH needs KAFKA_SSL_TRUSTSTORE_LOCATION (CA certificates, PEM)" >&2
          exit 2
        fi
        ;;
      *) echo "$fail KAFKA_SSL_CLIENT_AUTH must be none, requested or required" >&2; exit 2 ;;
    esac
  fi
  [[ $security == sasl_* ]] || return 0
  local entry name password mechanism
  IFS=, read -r -a mechanisms <<<"${KAFKA_SASL_MECHANISMS:-SCRAM-SHA-512,SCRAM-SHA-256,PLAIN}"
  for mechanism in "${mechanisms[@]}"; do
    case "$mechanism" in
      SCRAM-SHA-512 | SCRAM-SHA-256 | PLAIN) ;;
      *) echo "$fail KAFKA_SASL_MECHANISMS: '$mechanism' is not one of SCRAM-SHA-512, SCRAM-SHA-256, PLAIN" >&2; exit 2 ;;
    esac
  done
  IFS=, read -r -a users <<<"${KAFKA_SCRAM_USERS:-}"
  if [ "${#users[@]}" -eq 0 ]; then
    echo "$fail KAFKA_SCRAM_USERS (name=password,...) is required" >&2
    exit 2
  fi
  for entry in "${users[@]}"; do
    name=${entry%%=*}
    password=${entry#*=}
    if [[ $entry != *=* || ! $name =~ ^[A-Za-z0-9._@-]+$ || ! $password =~ ^[A-Za-z0-9._@~+/=-]+$ ]]; then
      echo "$fail KAFKA_SCRAM_USERS entry '$name=...' is not name=password of letters, digits and ._@- (password also ~+/=)" >&2
      exit 2
    fi
    for mechanism in "${mechanisms[@]}"; do
      [ "$mechanism" = PLAIN ] || scram_args+=(--add-scram "$mechanism=[name=$name,password=$password]")
    done
  done
}

# The listener lines for server.properties when the client listener is secured: CLIENT on
# KAFKA_PORT, INTERNAL (PLAINTEXT, between brokers), CONTROLLER (PLAINTEXT).
secure_properties() {
  local protocol=${security^^} prefix=listener.name.client mechanism entry lower plain_users=""
  cat <<PROPS
listeners=CLIENT://127.0.0.1:$port,INTERNAL://127.0.0.1:$internal_port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=CLIENT://127.0.0.1:$port,INTERNAL://127.0.0.1:$internal_port
listener.security.protocol.map=CLIENT:$protocol,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=INTERNAL
PROPS
  if [[ $security == *ssl ]]; then
    echo "$prefix.ssl.keystore.type=${KAFKA_SSL_KEYSTORE_TYPE:-PEM}"
    echo "$prefix.ssl.keystore.location=$KAFKA_SSL_KEYSTORE_LOCATION"
    [ -z "${KAFKA_SSL_KEYSTORE_PASSWORD:-}" ] || echo "$prefix.ssl.keystore.password=$KAFKA_SSL_KEYSTORE_PASSWORD"
    [ -z "${KAFKA_SSL_KEY_PASSWORD:-}" ] || echo "$prefix.ssl.key.password=$KAFKA_SSL_KEY_PASSWORD"
    echo "$prefix.ssl.client.auth=${KAFKA_SSL_CLIENT_AUTH:-none}"
    if [ -n "${KAFKA_SSL_TRUSTSTORE_LOCATION:-}" ]; then
      echo "$prefix.ssl.truststore.type=PEM"
      echo "$prefix.ssl.truststore.location=$KAFKA_SSL_TRUSTSTORE_LOCATION"
    fi
  fi
  [[ $security == sasl_* ]] || return 0
  echo "$prefix.sasl.enabled.mechanisms=$(IFS=, && echo "${mechanisms[*]}")"
  for mechanism in "${mechanisms[@]}"; do
    lower=${mechanism,,}
    if [ "$mechanism" = PLAIN ]; then
      for entry in "${users[@]}"; do plain_users+=" user_${entry%%=*}=\"${entry#*=}\""; done
      echo "$prefix.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required$plain_users;"
    else
      echo "$prefix.$lower.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    fi
  done
}

# shellcheck disable=SC2206 # KAFKA_JVM_OPTS: words, on purpose
java_cmd=(java -Xms128m "-Xmx$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true ${KAFKA_JVM_OPTS:-}
  "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$lib/*")

up() {
  need java "a Java 17 runtime" openjdk-17-jre-headless
  check_security
  fetch
  mkdir -p "$data"
  if running; then
    echo "kafka.sh: already running (pid $(cat "$pidfile"), 127.0.0.1:$port)" >&2
    return 0
  fi
  local props="$data/server.properties"
  if [ "$security" = plaintext ]; then
    cp "$here/server.properties" "$props"
    cat >>"$props" <<PROPS
node.id=$node_id
controller.quorum.voters=${KAFKA_QUORUM_VOTERS:-$node_id@127.0.0.1:$controller_port}
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
log.dirs=$data/logs
PROPS
  else
    # It gets passwords (PLAIN's users): readable by this user only.
    rm -f "$props"
    (umask 077 && cp "$here/server.properties" "$props")
    cat >>"$props" <<PROPS
node.id=$node_id
controller.quorum.voters=${KAFKA_QUORUM_VOTERS:-$node_id@127.0.0.1:$controller_port}
log.dirs=$data/logs
PROPS
    secure_properties >>"$props"
  fi
  if [ -n "${KAFKA_EXTRA_PROPERTIES:-}" ]; then
    printf '%s\n' "$KAFKA_EXTRA_PROPERTIES" >>"$props"
  fi
  if [ ! -f "$data/logs/meta.properties" ]; then
    local cluster_id=${KAFKA_CLUSTER_ID:-}
    if [ -z "$cluster_id" ]; then
      [ -f "$data/cluster.id" ] || new_cluster_id >"$data/cluster.id"
      cluster_id=$(cat "$data/cluster.id")
    fi
    "${java_cmd[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" --ignore-formatted \
      "${scram_args[@]}" >>"$data/format.log" 2>&1 || {
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
      stop TERM
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  local what=""
  [ "$security" = plaintext ] || what="$security, "
  echo "kafka.sh: ready on 127.0.0.1:$port (${what}pid $(cat "$pidfile"), log $logfile)" >&2
}

# stop TERM: a controlled shutdown (up to 30 s, then SIGKILL); stop KILL: at once, for a
# broker whose data is thrown away next (the tests' own brokers).
stop() {
  if ! running; then
    rm -f "$pidfile"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill "-$1" "$pid" 2>/dev/null || true
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
  down) stop TERM ;;
  discard) stop KILL ;;
  status) running ;;
  cluster-id)
    need java "a Java 17 runtime" openjdk-17-jre-headless
    fetch
    new_cluster_id
    ;;
  *) echo "usage: kafka.sh fetch|up|down|discard|status|cluster-id" >&2; exit 2 ;;
esac
