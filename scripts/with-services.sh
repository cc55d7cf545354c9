#!/usr/bin/env bash
# Run a command with a fresh local Kafka and Postgres on the given ports, and always stop
# them afterwards. The command sees KAFKA_BOOTSTRAP_SERVERS and TEST_DATABASE_URL.
#   scripts/with-services.sh KAFKA_PORT PG_PORT command...
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kport=$1; pport=$2; shift 2
cleanup() {
  KAFKA_PORT=$kport "$here/kafka.sh" down >/dev/null 2>&1 || true
  PG_PORT=$pport "$here/pg.sh" down >/dev/null 2>&1 || true
}
trap cleanup EXIT
KAFKA_PORT=$kport KAFKA_KEEP_DATA=0 "$here/kafka.sh" up
PG_PORT=$pport "$here/pg.sh" up
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$kport"
export TEST_DATABASE_URL
TEST_DATABASE_URL=$(PG_PORT=$pport "$here/pg.sh" url)
export KAFKA_TEST_PORT=$kport
"$@"
