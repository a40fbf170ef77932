#!/usr/bin/env bash
# Leaderboard latency at research scale: one competition with 100,000 submissions scored by two
# model versions (200,000 results, a few overrides), the api (release build) under concurrent
# load from wrk, for the first page and for a deep page (the cursor at rank 90,000), by default
# version (pinned) and by a named one; then EXPLAIN ANALYZE of the page query the api runs
# (crates/core/src/db/leaderboard.sql, the same text). A scratch database, easel_lbbench, is
# made and dropped. Needs Postgres (scripts/deps-up.sh starts it) and installs wrk from Debian.
#
#   scripts/bench-leaderboard.sh                  # 100,000 entries, 4 connections, 15 s a run
#   ENTRIES=20000 CONNECTIONS=32 RUN_SECONDS=30 scripts/bench-leaderboard.sh
set -euo pipefail
source "$(dirname "$0")/services-common.sh"
cd "$ROOT"

ENTRIES=${ENTRIES:-100000}
CONNECTIONS=${CONNECTIONS:-4}
SECONDS_PER_RUN=${RUN_SECONDS:-15}
PORT=${PORT:-18181}
DB=easel_lbbench
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PSQL=(psql -X -q -v ON_ERROR_STOP=1)

command -v wrk >/dev/null || apt_install wrk
scripts/deps-up.sh >/dev/null
log "building easel-ingest (migrations) and easel-api, release"
cargo build --release -p easel-ingest -p easel-api >&2
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"

"${PSQL[@]}" "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
API_PID=
cleanup() {
    [[ -n $API_PID ]] && kill "$API_PID" 2>/dev/null && wait "$API_PID" 2>/dev/null
    "${PSQL[@]}" "$PG_URL/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT

export APP_CONFIG_DIR="$ROOT/config" APP_ENVIRONMENT=local APP_DATABASE__URL="$PG_URL/$DB"
"$BIN/easel-ingest" migrate >/dev/null
log "seeding $ENTRIES submissions, each scored by v1 and v2"
"${PSQL[@]}" "$PG_URL/$DB" <<SQL
INSERT INTO competitions (id, slug, title, model_version)
VALUES ('00000000-0000-7000-8000-000000000001', 'research', 'Research scale', 'v1');
INSERT INTO submissions (id, competition_id, external_id, image_key, image_sha256, image_format, image_bytes,
                         width, height, status)
SELECT gen_random_uuid(), '00000000-0000-7000-8000-000000000001', 'e-' || g, 'images/' || md5(g::text),
       md5(g::text), 'jpeg', 100000, 640, 480, 'done'
FROM generate_series(1, $ENTRIES) g;
INSERT INTO results (id, submission_id, competition_id, model_version, score, overall, originality, color, texture,
                     composition, content, critique, new_tokens, timings, created_at)
SELECT gen_random_uuid(), id, competition_id, version, score, score, score, score, score, score, score,
       repeat('A considered critique of colour and composition. ', 8), 96, '{"batch_size": 8}', now() - age
FROM (SELECT s.id, s.competition_id, v.version, v.age, (1 + 99 * random())::real AS score
      FROM submissions s CROSS JOIN (VALUES ('v1', interval '1 day'), ('v2', interval '0')) AS v(version, age)) x;
INSERT INTO overrides (submission_id, score, reason)
SELECT id, 50, 'bench' FROM submissions ORDER BY id LIMIT 20;
VACUUM ANALYZE;
SQL
# A read key for the competition, made the way `easel keys create` makes one (token easel_ and
# 64 hex digits; the table keeps its sha256).
TOKEN="easel_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"${PSQL[@]}" "$PG_URL/$DB" -c "INSERT INTO api_keys (id, name, token_sha256, scopes)
    VALUES (gen_random_uuid(), 'bench', sha256(convert_to('$TOKEN', 'UTF8')), ARRAY['competition:research:read'])"

# The per-key rate limit would answer most of the load with 429: raised for the measurement.
APP_APPLICATION__RATE_LIMIT__PER_SECOND=1000000 APP_APPLICATION__RATE_LIMIT__BURST=1000000 \
    APP_APPLICATION__PORT=$PORT APP_TELEMETRY__FORMAT=json RUST_LOG=warn "$BIN/easel-api" >"$LOGS/bench-api.log" 2>&1 &
API_PID=$!
wait_for "easel-api" 60 curl -fsS -o /dev/null "http://127.0.0.1:$PORT/readyz"

# The cursor of the page that starts at rank 90,001 (90 % of the way down), as the api writes it.
DEEP=$((ENTRIES * 9 / 10))
cursor() {
    "${PSQL[@]}" -At "$PG_URL/$DB" -c "SELECT r.score::text || '_' || r.submission_id || '_$1' FROM results r
        WHERE r.model_version = '$1' AND NOT EXISTS (SELECT 1 FROM overrides o WHERE o.submission_id = r.submission_id)
        ORDER BY r.score DESC, r.submission_id DESC OFFSET $((DEEP - 1)) LIMIT 1"
}
BASE="http://127.0.0.1:$PORT/v1/competitions/research/results"
declare -A URLS=(
    ["first page, pinned v1"]="$BASE"
    ["first page, v2 named"]="$BASE?model_version=v2"
    ["rank $DEEP, pinned v1"]="$BASE?cursor=$(cursor v1)"
    ["rank $DEEP, v2 named"]="$BASE?cursor=$(cursor v2)"
)
curl -fsS -H "Authorization: Bearer $TOKEN" "${URLS["rank $DEEP, pinned v1"]}" | head -c 300 >&2
echo >&2

printf '\n%-24s %10s %10s %10s %10s %10s\n' "page (50 rows)" "req/s" "p50 ms" "p90 ms" "p99 ms" "max ms"
for name in "first page, pinned v1" "first page, v2 named" "rank $DEEP, pinned v1" "rank $DEEP, v2 named"; do
    out=$(wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $TOKEN" "${URLS[$name]}")
    if grep -q "Non-2xx" <<<"$out"; then
        echo "$out" >&2
        log "$name: some responses were not 200"
        exit 1
    fi
    ms() { awk -v q="$1" '$1 == q { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }' <<<"$out"; }
    rps=$(awk '/Requests\/sec/ { printf "%.0f", $2 }' <<<"$out")
    max=$(awk '$1 == "Latency" && !done { done = 1; v = $4; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 } printf "%.2f", v }' <<<"$out")
    printf '%-24s %10s %10s %10s %10s %10s\n' "$name" "$rps" "$(ms 50%)" "$(ms 90%)" "$(ms 99%)" "$max"
done

echo
echo "EXPLAIN ANALYZE (crates/core/src/db/leaderboard.sql, the generic plan a pooled connection settles on), first page and rank $DEEP of v1, 51 rows:"
IFS=_ read -r score id _ <<<"$(cursor v1)"
{
    echo "SET plan_cache_mode = force_generic_plan;"
    echo "PREPARE page(uuid, text, real, real, real, uuid, bigint) AS"
    grep -v '^--' crates/core/src/db/leaderboard.sql
    echo ";"
    echo "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) EXECUTE page('00000000-0000-7000-8000-000000000001', 'v1', '-Infinity', 'Infinity', 'Infinity', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 51);"
    echo "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) EXECUTE page('00000000-0000-7000-8000-000000000001', 'v1', '-Infinity', 'Infinity', $score, '$id', 51);"
} | "${PSQL[@]}" "$PG_URL/$DB"
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(psql -X -At "$PG_URL/postgres" -c 'SHOW server_version')"
