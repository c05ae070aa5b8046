#!/usr/bin/env bash
# Start or stop a throw-away PostgreSQL 15 and Redis on 127.0.0.1 for tests and benchmarks.
#
#   scripts/services.sh install        apt-get install postgresql, redis-server, chromium (as root)
#   eval "$(scripts/services.sh start DIR)"   start both with their data in DIR; prints exports
#   scripts/services.sh stop DIR       stop both, by the pids recorded in DIR
#
# Ports default to 55432 (PostgreSQL) and 56379 (Redis) so a system server is never touched.
set -euo pipefail

PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}

pg_bin() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -n "$dir" ] || { echo "PostgreSQL is not installed: run '$0 install' as root" >&2; exit 1; }
  echo "$dir"
}

as_postgres() {
  # From /: initdb and pg_ctl fail in a working directory that the postgres user cannot read
  # (a checkout under /root, say).
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "cd / && $*"; else bash -c "$*"; fi
}

cmd=${1:-}
case "$cmd" in
  install)
    export DEBIAN_FRONTEND=noninteractive
    # PostgreSQL and Redis for the servers; Chromium for the browser tests (Playwright drives
    # Debian's build: no browser download).
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v redis-server >/dev/null \
        || ! command -v chromium >/dev/null; then
      apt-get update -qq
      apt-get install -y -qq postgresql redis-server chromium >/dev/null
    fi
    ;;
  start)
    dir=$(realpath -m "${2:?usage: $0 start DIR}")
    mkdir -p "$dir"
    bin=$(pg_bin)
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    if [ ! -f "$dir/pg/PG_VERSION" ]; then
      as_postgres "'$bin/initdb' -D '$dir/pg' -U postgres -A trust --no-sync -E UTF8 >'$dir/initdb.log' 2>&1"
    fi
    as_postgres "'$bin/pg_ctl' -D '$dir/pg' -l '$dir/pg.log' -w -o \"-h 127.0.0.1 -p $PG_PORT -k '$dir' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200\" start >/dev/null"
    head -1 "$dir/pg/postmaster.pid" > "$dir/pg.pid"
    # Persistent like production (append-only file, fsync every second): a restarted Redis keeps
    # its queued messages. Losing them costs only time: the workers' reconciler redoes the work.
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly yes \
      --appendfsync everysec --daemonize yes --pidfile "$dir/redis.pid" \
      --logfile "$dir/redis.log" --dir "$dir"
    for _ in $(seq 50); do
      [ -s "$dir/redis.pid" ] && redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
      sleep 0.1
    done
    echo "export DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/0"
    echo "export CACHE_URL=redis://127.0.0.1:$REDIS_PORT/1"
    ;;
  stop)
    dir=$(realpath -m "${2:?usage: $0 stop DIR}")
    for name in redis pg; do
      if [ -s "$dir/$name.pid" ]; then
        pid=$(cat "$dir/$name.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      fi
    done
    ;;
  *)
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
