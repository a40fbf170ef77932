#!/usr/bin/env bash
# Brings up the dependencies and the three services in the background (idempotent), makes a
# local `admin` API key once (kept in .cache/run/admin.token), then prints INGEST_URL=...,
# API_URL=... and EASEL_TOKEN=... lines. Logs in .cache/logs, pids in .cache/run;
# scripts/dev-down.sh stops what this started.
#
#   eval "$(scripts/dev-up.sh)"   # exports INGEST_URL, API_URL and EASEL_TOKEN
set -euo pipefail
source "$(dirname "$0")/services-common.sh"

INGEST_PORT=${INGEST_PORT:-8080}
API_PORT=${API_PORT:-8081}
WORKER_PORT=${WORKER_PORT:-8082}

"$ROOT/scripts/deps-up.sh"
# Every binary in one cargo call, so dependencies are built once with one set of features.
log "building the services and the easel command (a first build takes about 25 minutes on 2 cores; later ones seconds)"
(cd "$ROOT" && cargo build -p easel-ingest -p easel-api -p easel-worker -p easel-cli) >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
ensure_model

export APP_CONFIG_DIR="$ROOT/config" APP_ENVIRONMENT=${APP_ENVIRONMENT:-local}
export APP_WORKER__MODEL_DIR=${APP_WORKER__MODEL_DIR:-$MODEL_DIR}
log "applying migrations"
"$BIN/easel-ingest" migrate >>"$LOGS/migrate.log" 2>&1

# start NAME PORT: runs target/debug/easel-NAME on PORT unless it is already running.
start() {
    local name=$1 port=$2
    if pid_alive "$RUN/$name.pid"; then return 0; fi
    log "starting easel-$name on 127.0.0.1:$port"
    APP_APPLICATION__PORT=$port setsid "$BIN/easel-$name" </dev/null >>"$LOGS/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}
start ingest "$INGEST_PORT"
start api "$API_PORT"
start worker "$WORKER_PORT"

for port in "$INGEST_PORT" "$API_PORT" "$WORKER_PORT"; do
    wait_for "the service on port $port" 120 curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz"
done

# The local admin key: made once with `easel keys create`, made again if the database lost it.
TOKEN_FILE="$RUN/admin.token"
if [[ ! -s $TOKEN_FILE ]] || ! curl -fsS -o /dev/null -H "Authorization: Bearer $(cat "$TOKEN_FILE")" \
        "http://127.0.0.1:$INGEST_PORT/v1/keys"; then
    log "making a local admin API key"
    (umask 077 && "$BIN/easel" keys create --name "local admin" --scope admin >"$TOKEN_FILE" 2>>"$LOGS/keys.log")
fi
echo "INGEST_URL=http://127.0.0.1:$INGEST_PORT"
echo "API_URL=http://127.0.0.1:$API_PORT"
echo "EASEL_TOKEN=$(cat "$TOKEN_FILE")"
echo "WORKER_METRICS_URL=http://127.0.0.1:$WORKER_PORT/metrics"
