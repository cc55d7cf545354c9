#!/usr/bin/env bash
# CI's check of the local run (twice in a row, the second piped through tee as people
# run it): `make run` comes up, `make demo` shows rows, Ctrl-C (SIGINT) stops everything,
# leaves no process behind and no stale .run/run.pid.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# ports of their own, so a developer's `make run` is not disturbed
export KAFKA_PORT=29092 PG_PORT=55442 SANDBOX_PORT=28900 INGEST_PORT=28080 CONSUMER_METRICS_PORT=29100

# job control: `make run &` gets a process group of its own and, unlike a plain background
# job in a script, does not start with SIGINT ignored, so the Ctrl-C below is a real one
set -m

leftovers() {
  # anything still in make run's process group, or still holding one of its ports
  pgrep -a -g "$1" || true
  for port in "$KAFKA_PORT" "$PG_PORT" "$SANDBOX_PORT" "$INGEST_PORT" "$CONSUMER_METRICS_PORT"; do
    ss -ltnH "sport = :$port" | grep -q . && echo "port $port is still open"
  done
  return 0
}

# run_round N PIPED: make run in the background (PIPED=1: as `make run 2>&1 | tee log`),
# make demo, Ctrl-C to the whole job, then nothing may be left behind
run_round() {
  local round=$1 piped=$2 log runner group
  log=$(mktemp)
  echo "-- round $round: make run$([ "$piped" = 1 ] && echo ' 2>&1 | tee run.log')"
  if [ "$piped" = 1 ]; then
    # a pipeline job: its process group is led by `make`; tee dies with the Ctrl-C too
    make run 2>&1 | tee "$log" >/dev/null &
  else
    make run >"$log" 2>&1 &
  fi
  runner=$!
  group=$(ps -o pgid= "$runner" | tr -d ' ')
  for _ in $(seq 1 180); do
    grep -q "gateway is running locally" "$log" && break
    if ! kill -0 "$runner" 2>/dev/null; then cat "$log"; echo "make run exited early" >&2; exit 1; fi
    sleep 1
  done
  grep -q "gateway is running locally" "$log" || { cat "$log"; echo "make run did not come up in 180 s" >&2; exit 1; }
  echo "-- round $round: make demo"
  if ! make demo; then tail -n 80 "$log"; kill -INT -- "-$group"; exit 1; fi
  echo "-- round $round: Ctrl-C"
  kill -INT -- "-$group"
  for _ in $(seq 1 90); do pgrep -g "$group" >/dev/null || break; sleep 1; done
  if pgrep -g "$group" >/dev/null; then tail -n 40 "$log"; echo "make run did not stop within 90 s of Ctrl-C" >&2; exit 1; fi
  sleep 1
  left=$(leftovers "$group")
  if [ -n "$left" ]; then echo "processes left behind after Ctrl-C:"; echo "$left"; exit 1; fi
  if [ -f .run/run.pid ]; then echo "make run left a stale .run/run.pid" >&2; exit 1; fi
  if [ "$piped" = 1 ]; then
    # tee died with the Ctrl-C: the clean stop is reported in .run/stop.log instead
    grep -qh "nothing left running" "$log" .run/stop.log 2>/dev/null \
      || { tail -n 40 "$log"; echo "make run did not report a clean stop" >&2; exit 1; }
    rm -f .run/stop.log
  else
    grep -q "nothing left running" "$log" || { tail -n 40 "$log"; echo "make run did not report a clean stop" >&2; exit 1; }
  fi
  rm -f "$log"
}

run_round 1 0
run_round 2 1
echo "local run check: 2 rounds of make run (plain, then piped through tee) / make demo / Ctrl-C passed"
