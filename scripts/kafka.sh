#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft, broker+controller in one JVM) for tests, CI and
# `make run`. The broker jars come from Maven Central once, into .cache/kafka/libs.
#
#   scripts/kafka.sh fetch | up | down | wipe | status
#
# `down` then `up` keeps the topics, their records and the consumer groups' offsets (an
# outage drill must not lose data); `wipe` stops the broker and deletes its data.
# Environment: KAFKA_PORT (default 9092; the controller listens on KAFKA_PORT+1),
# KAFKA_HEAP (default 512m), KAFKA_KEEP_DATA=0 to start from empty data (tests, CI).
# Tests add listeners (TLS, SASL): KAFKA_EXTRA_CONFIG names a properties file appended to
# server.properties (later keys win), KAFKA_FORMAT_ARGS adds storage-format arguments
# (e.g. --add-scram 'SCRAM-SHA-512=[name=u,password=p]'). A multi-node test cluster gives
# every node the same KAFKA_CLUSTER_ID (nodes formatted with different ids never form a quorum).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache/kafka"
port=${KAFKA_PORT:-9092}
cport=$((port + 1))
run="$cache/run-$port"
pidfile="$run/kafka.pid"

fetch() {
  if [ -f "$cache/libs/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { echo "kafka.sh: mvn not found (needed once, to fetch the broker jars)" >&2; exit 1; }
  command -v java >/dev/null || { echo "kafka.sh: java not found (Java 17+ runs the broker)" >&2; exit 1; }
  rm -rf "$cache/libs"
  echo "kafka.sh: fetching Apache Kafka jars from Maven Central into $cache/libs"
  mvn -q -B -Dstyle.color=never -f "$root/scripts/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$cache/libs" -DincludeScope=runtime
  touch "$cache/libs/.complete"
}

classpath() { ls "$cache"/libs/*.jar | tr '\n' ':'; }

is_running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() { (exec 3<>"/dev/tcp/127.0.0.1/${1:-$port}") 2>/dev/null; }

up() {
  fetch
  if is_running; then echo "kafka.sh: already running on 127.0.0.1:$port (pid $(cat "$pidfile"))"; return 0; fi
  if answers "$port"; then echo "kafka.sh: port $port is taken by another process" >&2; exit 1; fi
  if answers "$cport"; then
    echo "kafka.sh: controller port $cport (KAFKA_PORT+1) is taken by another process; pick another KAFKA_PORT" >&2
    exit 1
  fi
  if [ "${KAFKA_KEEP_DATA:-1}" = 0 ]; then rm -rf "$run"; fi
  mkdir -p "$run/data"
  cat > "$run/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$run/data
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=24
PROPS
  if [ -n "${KAFKA_EXTRA_CONFIG:-}" ]; then cat "$KAFKA_EXTRA_CONFIG" >> "$run/server.properties"; fi
  cat > "$run/log4j2.properties" <<PROPS
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=$run/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
PROPS
  local cp; cp=$(classpath)
  if [ ! -f "$run/data/meta.properties" ]; then
    local format_args=(); if [ -n "${KAFKA_FORMAT_ARGS:-}" ]; then eval "format_args=($KAFKA_FORMAT_ARGS)"; fi
    local id=${KAFKA_CLUSTER_ID:-}
    if [ -z "$id" ]; then id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1); fi
    java -cp "$cp" -Dlog4j2.configurationFile="$run/log4j2.properties" kafka.tools.StorageTool \
      format -t "$id" -c "$run/server.properties" "${format_args[@]}" >"$run/format.log" 2>&1 \
      || { cat "$run/format.log" >&2; exit 1; }
  fi
  # the readiness check below greps this log: a kept one already says "started"
  if [ -f "$run/server.log" ]; then mv "$run/server.log" "$run/server.log.prev"; fi
  nohup java -Xms"${KAFKA_HEAP:-512m}" -Xmx"${KAFKA_HEAP:-512m}" -XX:+UseG1GC \
    -Dlog4j2.configurationFile="$run/log4j2.properties" \
    -cp "$cp" kafka.Kafka "$run/server.properties" >"$run/stdout.log" 2>&1 &
  echo $! > "$pidfile"
  for _ in $(seq 1 120); do
    if ! is_running; then echo "kafka.sh: broker exited; see $run/server.log" >&2; tail -n 30 "$run/stdout.log" "$run/server.log" >&2 || true; exit 1; fi
    if answers && grep -q "Kafka Server started" "$run/server.log" 2>/dev/null; then
      echo "kafka.sh: broker up on 127.0.0.1:$port (pid $(cat "$pidfile"), logs $run/server.log)"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker did not come up within 60 s; see $run/server.log" >&2
  exit 1
}

down() {
  if ! is_running; then rm -f "$pidfile"; echo "kafka.sh: not running on port $port"; return 0; fi
  local pid; pid=$(cat "$pidfile")
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  rm -f "$pidfile"
  echo "kafka.sh: broker on port $port stopped"
}

wipe() {
  down
  rm -rf "$run"
  echo "kafka.sh: data of the broker on port $port deleted"
}

case "${1:-}" in
  fetch) fetch ;;
  up) up ;;
  down) down ;;
  wipe) wipe ;;
  status) if is_running; then echo "running (pid $(cat "$pidfile"))"; else echo "stopped"; exit 1; fi ;;
  *) echo "usage: scripts/kafka.sh fetch|up|down|wipe|status" >&2; exit 2 ;;
esac
