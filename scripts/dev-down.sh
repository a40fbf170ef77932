#!/usr/bin/env bash
# Stops what scripts/dev-up.sh and scripts/deps-up.sh started: the three services (SIGTERM,
# so the worker drains), SeaweedFS, and PostgreSQL/RabbitMQ only if those scripts started them.
set -euo pipefail
source "$(dirname "$0")/services-common.sh"

stop_pid() {
    local name=$1 file="$RUN/$1.pid"
    if pid_alive "$file"; then
        log "stopping $name"
        kill -TERM "$(cat "$file")"
        for _ in $(seq 60); do pid_alive "$file" || break; sleep 1; done
        if pid_alive "$file"; then kill -KILL "$(cat "$file")"; fi
    fi
    rm -f "$file"
}
for name in worker ingest api seaweedfs; do stop_pid "$name"; done
if [[ -f $RUN/rabbitmq.started-by-us ]]; then
    log "stopping RabbitMQ"
    rabbitmqctl -q stop >/dev/null 2>&1 || true
    rm -f "$RUN/rabbitmq.started-by-us"
fi
if [[ -f $RUN/postgres.started-by-us ]]; then
    log "stopping PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main stop || true
    rm -f "$RUN/postgres.started-by-us"
fi
