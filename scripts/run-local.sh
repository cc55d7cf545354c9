#!/usr/bin/env bash
# `make run`: the whole pipeline on this machine, in the foreground. Ctrl-C stops it all.
#   local Kafka -> Postgres -> migrate -> Shopee sandbox + demo shops -> ingest -> consumer
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
PY=${PY:-.venv/bin/python}

export KAFKA_PORT=${KAFKA_PORT:-9092}
export PG_PORT=${PG_PORT:-55432}
SANDBOX_PORT=${SANDBOX_PORT:-8900}
INGEST_PORT=${INGEST_PORT:-8080}
METRICS_PORT=${CONSUMER_METRICS_PORT:-9100}
DEMO_SHOPS=${DEMO_SHOPS:-5}

export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
export DATABASE_URL="postgresql://gateway:gateway@127.0.0.1:$PG_PORT/gateway"
export SHOPEE_PARTNER_ID=${SHOPEE_PARTNER_ID:-2001887}
export SHOPEE_PARTNER_KEY=${SHOPEE_PARTNER_KEY:-sandbox_partner_key_not_secret}
export SHOPEE_PUSH_KEY=${SHOPEE_PUSH_KEY:-$SHOPEE_PARTNER_KEY}
export SHOPEE_CALLBACK_URL="http://127.0.0.1:$INGEST_PORT/webhooks/shopee"
export SHOPEE_API_BASE_URL="http://127.0.0.1:$SANDBOX_PORT"
export BATCH_TIMEOUT_SECONDS=${BATCH_TIMEOUT_SECONDS:-5}
export CONSUMER_METRICS_PORT=$METRICS_PORT
export LOG_LEVEL=${LOG_LEVEL:-INFO}

mkdir -p .run
pids=()
stopping=0

cleanup() {
  [ "$stopping" = 1 ] && return
  stopping=1
  trap '' INT TERM PIPE
  # `make run 2>&1 | tee run.log`, then Ctrl-C: tee is gone with the SIGINT, and writing
  # to its pipe would end this script (SIGPIPE) before it stopped anything. Stop anyway,
  # and say so in .run/stop.log instead.
  if ! { echo; echo "[run] stopping..."; } 2>/dev/null; then
    exec >>.run/stop.log 2>&1
    echo "[run] stopping after Ctrl-C; the terminal's pipe is gone, so this goes to .run/stop.log"
  fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null
  done
  scripts/kafka.sh down | sed -u 's/^/[kafka] /'
  scripts/pg.sh down | sed -u 's/^/[postgres] /'
  rm -f .run/run.pid
  echo "[run] stopped; nothing left running"
}
interrupted=0
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME COMMAND...: run in the background with prefixed output; remember its pid
start() {
  local name=$1; shift
  ( exec "$@" ) > >(sed -u "s/^/[$name] /") 2>&1 &
  pids+=($!)
}

wait_http() {
  local url=$1 what=$2
  for _ in $(seq 1 120); do
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
    sleep 0.5
  done
  echo "[run] $what did not come up ($url)" >&2
  exit 1
}

echo $$ > .run/run.pid
KAFKA_KEEP_DATA=0 scripts/kafka.sh up | sed -u 's/^/[kafka] /'; [ "${PIPESTATUS[0]}" = 0 ] || exit 1
scripts/pg.sh up | sed -u 's/^/[postgres] /'; [ "${PIPESTATUS[0]}" = 0 ] || exit 1
$PY scripts/create_topics.py "$KAFKA_BOOTSTRAP_SERVERS" marketplace.orders:12 marketplace.orders.dlq:1 || exit 1
$PY -m service migrate 2>&1 | sed -u 's/^/[migrate] /'; [ "${PIPESTATUS[0]}" = 0 ] || exit 1

start sandbox $PY -m service sandbox serve --port "$SANDBOX_PORT" --shops "$DEMO_SHOPS"
wait_http "http://127.0.0.1:$SANDBOX_PORT/healthz" "the Shopee sandbox"
$PY -m service sandbox demo-shops --shops "$DEMO_SHOPS" --sandbox-url "http://127.0.0.1:$SANDBOX_PORT" 2>&1 | sed -u 's/^/[demo-shops] /'

start ingest $PY -m service serve --host 127.0.0.1 --port "$INGEST_PORT"
wait_http "http://127.0.0.1:$INGEST_PORT/readyz" "the ingest service"
start consumer $PY -m service consume
wait_http "http://127.0.0.1:$METRICS_PORT/metrics" "the consumer"
start recover $PY -m service recover --metrics-port 0

cat <<BANNER

  ================================================================================
  Marketplace webhook gateway is running locally
    ingest      POST http://127.0.0.1:$INGEST_PORT/webhooks/shopee   (/healthz /readyz /metrics)
    consumer    metrics http://127.0.0.1:$METRICS_PORT/metrics
    sandbox     Shopee API http://127.0.0.1:$SANDBOX_PORT   (stats: /sandbox/stats)
    kafka       $KAFKA_BOOTSTRAP_SERVERS   topics marketplace.orders, marketplace.orders.dlq
    postgres    $DATABASE_URL
    demo        $DEMO_SHOPS shops (ids 100000..), batch timeout ${BATCH_TIMEOUT_SECONDS}s (production: 120s)
  Try: make demo        (in another terminal: signed pushes in, rows out)
  Stop: Ctrl-C
  ================================================================================

BANNER

# wait for Ctrl-C, or for one of the processes to end (it should not)
trap 'interrupted=1' INT TERM
while [ "$interrupted" = 0 ]; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      sleep 1  # a Ctrl-C reaches the children too; let its trap run first
      [ "$interrupted" = 1 ] && break 2
      echo "[run] a process exited unexpectedly; stopping everything" >&2
      exit 1
    fi
  done
  sleep 1
done
exit 0
