#!/usr/bin/env bash
# `make dev`: the whole service on this machine, in the foreground.
# Starts a private redis-server under DATA_DIR (unless REDIS_URL is set), the nginx front on
# PORT with gunicorn behind it, and WORKERS RQ workers, each restarted with a log line when
# it dies (like compose's restart policy). Ctrl-C or SIGTERM stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PORT="${PORT:-5000}" WORKERS="${WORKERS:-2}" DATA_DIR="${DATA_DIR:-$PWD/data}"
mkdir -p "$DATA_DIR"

pids=()     # web and workers
redis=()    # stopped last, once nothing uses it
stop() {
  trap - INT TERM EXIT
  echo "stopping..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  kill -TERM "${redis[@]}" 2>/dev/null || true
  wait || true
}
trap 'stop; exit 0' INT TERM
trap stop EXIT

# Run a command and start it again whenever it exits, until this subshell is told to stop.
keep() {
  local name=$1 child status
  shift
  trap 'kill -TERM "$child" 2>/dev/null || true; wait "$child" || true; exit 0' TERM
  while true; do
    "$@" &
    child=$!
    status=0
    wait "$child" || status=$?
    echo "dev: $name (pid $child) exited with status $status; restarting it" >&2
    sleep 1
  done
}

if [ -z "${REDIS_URL:-}" ]; then
  if ! command -v redis-server >/dev/null; then
    bash scripts/system-deps.sh redis-server || {
      echo "Set REDIS_URL to a running Redis, or install redis-server." >&2
      exit 1
    }
  fi
  port="${REDIS_PORT:-$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
  mkdir -p "$DATA_DIR/redis"
  # A fresh password each run, given on stdin (not in `ps`); only this service's processes get it.
  password="$($BIN/python -c 'import secrets; print(secrets.token_hex(16))')"
  redis_server() {
    exec redis-server - --port "$port" --bind 127.0.0.1 --dir "$DATA_DIR/redis" --appendonly yes \
      --save '' --daemonize no --loglevel warning \
      --maxmemory "${REDIS_MAXMEMORY:-256mb}" --maxmemory-policy noeviction <<<"requirepass $password"
  }
  keep redis redis_server &
  redis+=($!)
  export REDIS_URL="redis://:$password@127.0.0.1:$port/0"
  for _ in $(seq 100); do REDISCLI_AUTH="$password" redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  echo "redis-server on redis://127.0.0.1:$port/0 with a password (data in $DATA_DIR/redis)"
fi

# The nginx front on HOST:PORT, as compose's proxy: it takes whole requests from slow
# clients before gunicorn, on a private loopback port, sees them. Without nginx (and no
# root to install it) gunicorn serves PORT itself.
web_host=${HOST:-127.0.0.1} web_port=$PORT
if command -v nginx >/dev/null || bash scripts/system-deps.sh nginx; then
  # Refuse an open HOST without keys here: gunicorn's own check sees only its loopback port.
  $BIN/python -c 'import sys; from imgjobs.config import from_env; from web.auth import open_bind_problem
problem = open_bind_problem([(sys.argv[1], int(sys.argv[2]))], from_env()); sys.exit(problem and f"Error: {problem}")' \
    "${HOST:-127.0.0.1}" "$PORT"
  web_host=127.0.0.1
  web_port="$($BIN/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  front() {
    LISTEN="${HOST:-127.0.0.1}:$PORT" UPSTREAM="127.0.0.1:$web_port" RESOLVER=127.0.0.1 \
      SPOOL_DIR="$DATA_DIR/nginx" exec sh deploy/nginx/run.sh
  }
  keep proxy front &
  pids+=($!)
else
  echo "dev: no nginx, so gunicorn serves clients itself and slow ones can hold its threads" >&2
fi
keep web env HOST="$web_host" PORT="$web_port" $BIN/gunicorn --config gunicorn.conf.py 'web:create_app()' &
pids+=($!)
for n in $(seq "$WORKERS"); do
  keep "worker $n" $BIN/python -m worker &
  pids+=($!)
done
echo "service on http://localhost:$PORT with $WORKERS worker(s); Ctrl-C stops it"
wait
