#!/usr/bin/env bash
# The whole test suite — the test command README.md gives, and what .ci/run runs on a clean
# clone. Installs and starts what the tests need (Postgres, RabbitMQ, SeaweedFS; the real Qwen
# tokenizer, all-MiniLM-L6-v2 and the CC0 sample paintings into .cache/; Debian's chromium and
# chromium-driver for the dashboard's browser tests; valgrind for the test that runs the default
# build on a CPU without AVX-512), then runs every Rust test in the workspace
# (dev profile) and the offline Kubernetes checks. Screenshots of the dashboard's pages land in
# target/screenshots/.
set -euo pipefail
source "$(dirname "$0")/services-common.sh"
cd "$ROOT"

step() { printf '\n=== %s\n' "$*" >&2; }

step "test assets"
scripts/fetch-qwen-tokenizer.sh
scripts/fetch-minilm.sh
scripts/fetch-paintings.sh

step "services the tests talk to"
scripts/deps-up.sh

step "a headless browser for the dashboard tests"
ensure_chromium

step "valgrind (a CPU without AVX-512, for the portability test)"
ensure_valgrind

step "Rust tests (workspace)"
# The pipeline tests start and SIGKILL real worker processes: build the binary they launch.
cargo build -q -p easel-worker
export EASEL_WORKER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/easel-worker"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast "$@"
else
    cargo test --workspace --no-fail-fast "$@"
fi

step "Kubernetes manifests (offline)"
scripts/check-k8s.sh

step "all tests passed"
