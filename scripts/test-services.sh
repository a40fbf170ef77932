#!/usr/bin/env bash
# Runs the service test suite (tests/tests/pipeline) against real services: starts PostgreSQL,
# RabbitMQ and SeaweedFS if they are down, fetches the sample paintings, builds the worker
# binary the tests launch, then runs the tests with cargo-nextest (cargo test without it).
set -euo pipefail
source "$(dirname "$0")/services-common.sh"

"$ROOT/scripts/deps-up.sh"
"$ROOT/scripts/fetch-paintings.sh"
cd "$ROOT"
cargo build -q -p easel-worker
export EASEL_WORKER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/easel-worker"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run -p easel-tests -p easel-core -p easel-ingest -p easel-api -p easel-worker "$@"
else
    cargo test -p easel-tests -p easel-core -p easel-ingest -p easel-api -p easel-worker "$@"
fi
