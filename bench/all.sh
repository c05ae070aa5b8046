#!/usr/bin/env bash
# `make bench`: every benchmark named by the issues, each side by side with its reference, in one
# run. The ones that need PostgreSQL get a throw-away server (scripts/services.sh, free ports,
# stopped by pid on the way out) unless BENCH_DATABASE_URL names one; each makes and reuses a
# database of its own there. Results: docs/benchmarks.md.
#
#   bench/all.sh                       # all of them (about 35 minutes on 2 cores)
#   BENCHES="leaderboard train" bench/all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
BENCHES=${BENCHES:-ingest inbox dataset_build leaderboard train serving judging pipeline soak}

if [ -z "${BENCH_DATABASE_URL:-}" ]; then
  dir=$(mktemp -d /tmp/sinkhole-bench.XXXXXX)
  free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  export PG_PORT=${PG_PORT:-$(free_port)} REDIS_PORT=${REDIS_PORT:-$(free_port)}
  trap 'scripts/services.sh stop "$dir" >/dev/null || true; rm -rf "$dir"' EXIT
  eval "$(scripts/services.sh start "$dir")"
  export BENCH_DATABASE_URL=$DATABASE_URL
  # bench/ingest.py and bench/serving.py read DATABASE_URL, CACHE_URL and CELERY_BROKER_URL as set here.
fi

# A benchmark that misses its target exits non-zero (judging, pipeline, soak): the others still run, and
# the whole run exits non-zero at the end.
failed=""
for bench in $BENCHES; do
  printf '\n== bench/%s.py\n' "$bench"
  "$PY" "bench/$bench.py" || failed="$failed $bench"
done
if [ -n "$failed" ]; then
  printf '\nmissed a target or failed:%s\n' "$failed"
  exit 1
fi
