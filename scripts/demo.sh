#!/usr/bin/env bash
# The main job, end to end: brings everything up, pushes the 174 sample paintings through the
# ingest API in one bulk request, waits until the worker has scored them all, prints the
# leaderboard from the API, then the dashboard's address and a key to sign in with. The demo
# model has random weights (see README): its scores and critiques are noise; real scoring needs
# a trained Easel checkpoint in APP_WORKER__MODEL_DIR.
set -euo pipefail
source "$(dirname "$0")/services-common.sh"

eval "$("$ROOT/scripts/dev-up.sh")"
"$ROOT/scripts/fetch-paintings.sh"
AUTH=(-H "Authorization: Bearer $EASEL_TOKEN")

SLUG=${SLUG:-met-demo-$(date +%Y%m%d-%H%M%S)}
log "creating competition $SLUG"
curl -fsS "${AUTH[@]}" -X POST "$INGEST_URL/v1/competitions" -H 'content-type: application/json' \
    -d "{\"slug\": \"$SLUG\", \"title\": \"The Met, sampled\"}" >/dev/null

log "submitting $(wc -l <"$PAINTINGS/manifest.jsonl") paintings in one bulk request"
args=(-F "manifest=@$PAINTINGS/manifest.jsonl;type=application/x-ndjson")
while read -r file; do args+=(-F "files=@$PAINTINGS/$file;type=image/jpeg"); done \
    < <(jq -r .file "$PAINTINGS/manifest.jsonl")
curl -fsS "${AUTH[@]}" "${args[@]}" "$INGEST_URL/v1/competitions/$SLUG/bulk" | jq -c '{accepted, duplicates, rejected}'

log "waiting for the worker"
while true; do
    progress=$(curl -fsS "${AUTH[@]}" "$API_URL/v1/competitions/$SLUG/progress")
    printf '\r    %s' "$(jq -c '{queued, processing, done, failed}' <<<"$progress")" >&2
    if jq -e '.done + .failed == .total' <<<"$progress" >/dev/null; then break; fi
    sleep 1
done
echo >&2

log "leaderboard (top 10; random-weight demo model)"
curl -fsS "${AUTH[@]}" "$API_URL/v1/competitions/$SLUG/results?limit=10" \
    | jq -r '.items[] | "\(.score | . * 10 | round / 10)\t\(.external_id)\t\(.critique[0:60] | gsub("\n"; " "))"'
echo "export: curl -H 'Authorization: Bearer $EASEL_TOKEN' $API_URL/v1/competitions/$SLUG/export.csv"

# A key for the competition's organiser (read + manage, no admin), to sign in to the dashboard.
ORGANISER=$(curl -fsS "${AUTH[@]}" -X POST "$INGEST_URL/v1/keys" -H 'content-type: application/json' \
    -d "{\"name\": \"$SLUG organiser\", \"scopes\": [\"competition:$SLUG:read\", \"competition:$SLUG:manage\"]}" | jq -r .token)
echo
echo "dashboard: $API_URL/dashboard/competitions/$SLUG"
echo "sign in with this key (shown once; it may read and manage $SLUG only): $ORGANISER"
