#!/usr/bin/env bash
# Easel against HF transformers on this CPU, in one run: the same model shape, random f32
# weights, the same image size, batches and threads; prints Easel ÷ HF per path and batch,
# with the CPU's model and vector flags. docs/PERFORMANCE.md ("CPU against PyTorch") keeps
# its output.
#
#   scripts/bench-cpu-vs-hf.sh                         # Qwen2-VL-2B shape, 224², batch 1 and 4
#   PRESET=tiny IMAGE_SIZE=56 NEW_TOKENS=4 scripts/bench-cpu-vs-hf.sh   # a smoke run, seconds
#
# Environment: PRESET (qwen2-vl-2b), IMAGE_SIZE (224), BATCHES (1,4), PREFILL_BATCHES (1),
# NEW_TOKENS (16), ITERS (2), DTYPE (f32; bf16 compares Easel's bf16 with HF's bf16),
# THREADS (every core), OUT (a fresh folder under /tmp), EASEL (the easel binary; built with
# `cargo build --release -p easel-cli` when unset), EASEL_EXTRA (more `easel bench model` flags).
# Needs python3 with torch and transformers (pip install -r scripts/reference/requirements.txt).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
PRESET="${PRESET:-qwen2-vl-2b}"
IMAGE_SIZE="${IMAGE_SIZE:-224}"
BATCHES="${BATCHES:-1,4}"
PREFILL_BATCHES="${PREFILL_BATCHES:-1}"
NEW_TOKENS="${NEW_TOKENS:-16}"
ITERS="${ITERS:-2}"
DTYPE="${DTYPE:-f32}"
THREADS="${THREADS:-$(nproc)}"
OUT="${OUT:-$(mktemp -d /tmp/easel-cpu-vs-hf.XXXXXX)}"
mkdir -p "$OUT"

if [[ -z "${EASEL:-}" ]]; then
    cargo build --release -q -p easel-cli
    EASEL="$REPO/target/release/easel"
fi
python3 -c 'import torch, transformers' 2>/dev/null || {
    echo "python3 needs torch and transformers: pip install -r scripts/reference/requirements.txt" >&2
    exit 1
}

export OMP_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS" RAYON_NUM_THREADS="$THREADS"
{
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') ($(nproc) cores, $THREADS threads each)"
    echo "vector flags: $(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|avx512f|avx512bw|avx512_bf16|avx512_vnni|amx_bf16|amx_tile)$' | sort | tr '\n' ' ')"
    echo "easel: $EASEL ($(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty'))"
    echo "python: $(python3 -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads")')"
} | tee "$OUT/machine.txt"

# HF first, then Easel: each alone on the machine.
python3 scripts/gpu/hf_baseline.py --preset "$PRESET" --device cpu --dtype "$DTYPE" --image-size "$IMAGE_SIZE" \
    --vision-batches "$BATCHES" --prefill-batches "$PREFILL_BATCHES" --generate-batches "$BATCHES" \
    --new-tokens "$NEW_TOKENS" --iters "$ITERS" --gen-iters 1 --out "$OUT/hf.jsonl" >/dev/null
# Easel's bench runs prefill at every --batch; the HF run's prefill batches are the ones compared.
# shellcheck disable=SC2086
"$EASEL" bench model --preset "$PRESET" --random-weights --device cpu --dtype "$DTYPE" --image-size "$IMAGE_SIZE" \
    --batch "$BATCHES" --new-tokens "$NEW_TOKENS" --iters "$ITERS" ${EASEL_EXTRA:-} >"$OUT/easel.jsonl"

python3 - "$OUT" <<'EOF' | tee "$OUT/table.md"
import json, sys
from pathlib import Path

out = Path(sys.argv[1])

def rows(name):
    recs = {}
    for line in (out / name).read_text().splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("path") in ("score", "prefill", "generate") and "batch" in r and "error" not in r:
                recs[(r["path"], r["batch"])] = r
    return recs

def rate(r):
    return r["critiques_per_s"] if r["path"] == "generate" else r["images_per_s"]

hf, easel = rows("hf.jsonl"), rows("easel.jsonl")
label = {"score": "score path (vision tower)", "prefill": "prefill", "generate": "critique"}
print("| path | batch | HF transformers | Easel | Easel ÷ HF |")
print("|---|---|---|---|---|")
ratios = []
for key in sorted(hf, key=lambda k: (["score", "prefill", "generate"].index(k[0]), k[1])):
    if key not in easel:
        continue
    h, e = rate(hf[key]), rate(easel[key])
    unit = "critiques/s" if key[0] == "generate" else "img/s"
    extra = f", {hf[key]['prompt_tokens']} tokens" if key[0] == "prefill" else ""
    extra += f", {hf[key]['new_tokens']} new tokens" if key[0] == "generate" else ""
    ratios.append(e / h)
    print(f"| {label[key[0]]}{extra} | {key[1]} | {h:.3f} {unit} | {e:.3f} {unit} | {e / h:.2f}× |")
if ratios:
    print(f"\nlowest Easel ÷ HF: {min(ratios):.2f}×, highest {max(ratios):.2f}×")
EOF
echo "raw JSON lines: $OUT/hf.jsonl, $OUT/easel.jsonl"
