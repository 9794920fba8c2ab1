#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for benchmarks and manual tests (never for real keys: fsync is
# on, but the data dir lives under /tmp).
#   throwaway-postgres.sh start   → prints a postgres:// URL on stdout; state in $PGTMP_FILE
#   throwaway-postgres.sh stop    → stops it and removes the data dir
#   throwaway-postgres.sh pin CPUS → moves its processes (and the backends it forks later) to CPUS
set -euo pipefail
STATE=${PGTMP_FILE:-/tmp/vigil-throwaway-postgres.state}
PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$PGBIN/initdb" ] || { echo "no PostgreSQL server binaries (apt-get install postgresql)" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
start)
  dir=$(mktemp -d /tmp/vigil-pg.XXXXXX)
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
  chmod 700 "$dir"
  as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >/dev/null
  printf '%s %s\n' "$dir" "$port" > "$STATE"
  echo "postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  ;;
stop)
  [ -f "$STATE" ] || exit 0
  read -r dir port < "$STATE"
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  rm -rf "$dir" "$STATE"
  ;;
pin)
  [ -f "$STATE" ] || { echo "no throwaway cluster running" >&2; exit 1; }
  read -r dir port < "$STATE"
  pid=$(head -1 "$dir/data/postmaster.pid")
  for p in "$pid" $(pgrep -P "$pid"); do taskset -a -p -c "${2:?CPUS}" "$p" >/dev/null; done
  ;;
*)
  echo "usage: $0 start|stop|pin CPUS" >&2; exit 2 ;;
esac
