#!/usr/bin/env bash
# Throwaway PostgreSQL 15 cluster for tests, CI and `make run`: initdb into a temp folder,
# started with pg_ctl on 127.0.0.1, as the unprivileged `postgres` user when run as root.
#
#   scripts/pg.sh up | down | status | url
#
# Environment: PG_PORT (default 55432), PG_DIR (default ${TMPDIR:-/tmp}/gateway-pg-$PG_PORT).
# The database `gateway` is created, owned by user `gateway` (password `gateway`).
set -euo pipefail

port=${PG_PORT:-55432}
dir=${PG_DIR:-${TMPDIR:-/tmp}/gateway-pg-$port}
data="$dir/data"

bindir=""
for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
  if [ -x "$d/initdb" ]; then bindir=$d; break; fi
done
if [ -z "$bindir" ]; then
  bindir=$(dirname "$(command -v initdb 2>/dev/null || true)")
  [ -x "$bindir/initdb" ] || { echo "pg.sh: initdb not found (install postgresql-15)" >&2; exit 1; }
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

url() { echo "postgresql://gateway:gateway@127.0.0.1:$port/gateway"; }

running() { as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

up() {
  if [ -d "$data" ] && running; then echo "pg.sh: already running on 127.0.0.1:$port"; return 0; fi
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    chown postgres "$dir"
  fi
  as_owner "$bindir/initdb" -D "$data" -U postgres -A trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  cat >> "$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
shared_buffers = 256MB
fsync = on
synchronous_commit = on
CONF
  as_owner "$bindir/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -n 30 "$dir/server.log" >&2; exit 1; }
  as_owner "$bindir/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
    -c "CREATE ROLE gateway LOGIN SUPERUSER PASSWORD 'gateway'" \
    -c "CREATE DATABASE gateway OWNER gateway"
  echo "pg.sh: postgres up on 127.0.0.1:$port ($(url)), data in $data"
}

down() {
  if [ -d "$data" ] && running; then
    as_owner "$bindir/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    echo "pg.sh: postgres on port $port stopped"
  else
    echo "pg.sh: not running on port $port"
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if [ -d "$data" ] && running; then echo running; else echo stopped; exit 1; fi ;;
  url) url ;;
  *) echo "usage: scripts/pg.sh up|down|status|url" >&2; exit 2 ;;
esac
