#!/usr/bin/env bash
# Easel against HF transformers on this CPU, in one run: the same model shape, random f32
# weights, the same image size, batches and threads; prints Easel ÷ HF per path and batch,
# with the CPU's model and vector flags. docs/PERFORMANCE.md ("CPU against PyTorch") keeps
# its output.
#
#   scripts/bench-cpu-vs-hf.sh                         # Qwen2-VL-2B shape, 224², batch 1 and 4
#   WEIGHTS=f32,bf16,int8 HF_DTYPES=f32,bf16 scripts/bench-cpu-vs-hf.sh   # + Easel's packed weights, HF in bf16
#   PRESET=tiny IMAGE_SIZE=56 NEW_TOKENS=4 scripts/bench-cpu-vs-hf.sh   # a smoke run, seconds
#
# Environment: PRESET (qwen2-vl-2b), IMAGE_SIZE (224), BATCHES (1,4), PREFILL_BATCHES (1),
# NEW_TOKENS (16), ITERS (2), DTYPE (f32: the activations' dtype on both sides; bf16 compares
# Easel's bf16 with HF's bf16), WEIGHTS (f32: Easel's `--weights` formats, one run each, f32
# activations), HF_DTYPES (DTYPE: HF runs, one per dtype; ratios are against the first),
# THREADS (every core), OUT (a fresh folder under /tmp), EASEL (the easel binary; built with
# `cargo build --release -p easel-cli` when unset), EASEL_EXTRA (more `easel bench model` flags),
# ROUNDS (1: how many times both sides run, alternating which goes first; the table then shows
# each side's median rate and every round's ratio, so a machine whose speed drifts between
# the two runs, as shared VMs do by 10–30 %, shows the spread instead of one lucky or unlucky pair).
# Below the table: the steal (CPU time the hypervisor took from this VM) while each figure was
# timed, and per run the transparent huge pages faulted in and refused, to tell the host's noise
# from the code's.
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
WEIGHTS="${WEIGHTS:-f32}"
HF_DTYPES="${HF_DTYPES:-$DTYPE}"
THREADS="${THREADS:-$(nproc)}"
ROUNDS="${ROUNDS:-1}"
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a whole number ≥ 1, not '$ROUNDS'" >&2; exit 1; }
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

# What the machine did around one run: CPU time the hypervisor took from this VM ("steal", from
# /proc/stat) and anonymous memory faulted in as transparent huge pages or refused them
# (/proc/vmstat). Shared VMs drift by 10–30 % between runs; the steal says when that is the
# host, and Easel keeps its weights on huge pages, so a run that got few ran slower.
snapshot() {
    local steal total alloc fallback
    read -r steal total < <(awk '/^cpu /{t=0; for (i=2; i<=9; i++) t+=$i; print $9, t}' /proc/stat)
    alloc=$(awk '$1=="thp_fault_alloc"{print $2}' /proc/vmstat 2>/dev/null)
    fallback=$(awk '$1=="thp_fault_fallback"{print $2}' /proc/vmstat 2>/dev/null)
    echo "${steal:-0} ${total:-0} ${alloc:-0} ${fallback:-0} $(date +%s)"
}
# measured SIDE ROUND COMMAND…: runs the command and appends one line about its run to noise.jsonl.
measured() {
    local side=$1 round=$2 before after
    shift 2
    before=($(snapshot))
    "$@"
    after=($(snapshot))
    local ticks=$((after[1] - before[1]))
    python3 -c 'import json, sys; s, r, st, t, a, f, sec = sys.argv[1:]; print(json.dumps({"side": s, "round": int(r),
        "steal_pct": round(100 * int(st) / max(int(t), 1), 1), "thp_fault_alloc": int(a), "thp_fault_fallback": int(f),
        "seconds": int(sec)}))' "$side" "$round" $((after[0] - before[0])) "$ticks" $((after[2] - before[2])) \
        $((after[3] - before[3])) $((after[4] - before[4])) >>"$OUT/noise.jsonl"
}

# Each run alone on the machine; every run appends its JSON lines, one file per side and format.
run_hf() {
    for dtype in ${HF_DTYPES//,/ }; do
        measured "hf-$dtype" "$round" python3 scripts/gpu/hf_baseline.py --preset "$PRESET" --device cpu --dtype "$dtype" --image-size "$IMAGE_SIZE" \
            --vision-batches "$BATCHES" --prefill-batches "$PREFILL_BATCHES" --generate-batches "$BATCHES" \
            --new-tokens "$NEW_TOKENS" --iters "$ITERS" --gen-iters 1 --out "$OUT/hf-$dtype.jsonl" >/dev/null
    done
}
# Easel's bench runs prefill at every --batch; the HF run's prefill batches are the ones compared.
run_easel() {
    for weights in ${WEIGHTS//,/ }; do
        # shellcheck disable=SC2086
        measured "easel-$weights" "$round" "$EASEL" bench model --preset "$PRESET" --random-weights --device cpu --dtype "$DTYPE" --weights "$weights" \
            --image-size "$IMAGE_SIZE" --batch "$BATCHES" --new-tokens "$NEW_TOKENS" --iters "$ITERS" ${EASEL_EXTRA:-} \
            >>"$OUT/easel-$weights.jsonl"
    done
}
rm -f "$OUT"/hf-*.jsonl "$OUT"/easel-*.jsonl "$OUT"/noise.jsonl
# HF first in odd rounds, Easel first in even ones.
for ((round = 1; round <= ROUNDS; round++)); do
    if ((round % 2)); then run_hf; run_easel; else run_easel; run_hf; fi
done

python3 - "$OUT" "$HF_DTYPES" "$WEIGHTS" "$DTYPE" "$ROUNDS" <<'EOF' | tee "$OUT/table.md"
import json, statistics, sys
from pathlib import Path

out, hf_dtypes, weights, dtype = Path(sys.argv[1]), sys.argv[2].split(","), sys.argv[3].split(","), sys.argv[4]
rounds_run = int(sys.argv[5])

def rows(name):
    """Every round's rates per (path, batch), in the order the rounds ran."""
    recs = {}
    for line in (out / name).read_text().splitlines():
        if line.startswith("{"):
            r = json.loads(line)
            if r.get("path") in ("score", "prefill", "generate") and "batch" in r and "error" not in r:
                rate = r["critiques_per_s"] if r["path"] == "generate" else r["images_per_s"]
                rec = recs.setdefault((r["path"], r["batch"]), {**r, "rates": [], "steals": []})
                rec["rates"].append(rate)
                rec["steals"].append(r.get("steal_pct"))
    return recs

def rate(r):
    return statistics.median(r["rates"])

hf = {d: rows(f"hf-{d}.jsonl") for d in hf_dtypes}
easel = {w: rows(f"easel-{w}.jsonl") for w in weights}
base = hf[hf_dtypes[0]]
name = lambda w: f"Easel {dtype}" if w == "f32" else f"Easel {w} weights"
label = {"score": "score path (vision tower)", "prefill": "prefill", "generate": "critique"}
cols = [f"HF {d}" for d in hf_dtypes] + [name(w) for w in weights] + [f"{name(w)} ÷ HF {hf_dtypes[0]}" for w in weights]
print("| path | batch | " + " | ".join(cols) + " |")
print("|---|---|" + "---|" * len(cols))
ratios = {w: [] for w in weights}
each_round = {w: [] for w in weights}
for key in sorted(base, key=lambda k: (["score", "prefill", "generate"].index(k[0]), k[1])):
    if not all(key in easel[w] for w in weights):
        continue
    unit = "critiques/s" if key[0] == "generate" else "img/s"
    extra = f", {base[key]['prompt_tokens']} tokens" if key[0] == "prefill" else ""
    extra += f", {base[key]['new_tokens']} new tokens" if key[0] == "generate" else ""
    cells = [f"{rate(hf[d][key]):.3f} {unit}" if key in hf[d] else "–" for d in hf_dtypes]
    cells += [f"{rate(easel[w][key]):.3f}" for w in weights]
    for w in weights:
        ratio = rate(easel[w][key]) / rate(base[key])
        ratios[w].append(ratio)
        rounds = [e / h for e, h in zip(easel[w][key]["rates"], base[key]["rates"])]
        each_round[w].extend(rounds)
        each = f" ({', '.join(f'{r:.2f}' for r in rounds)})" if rounds_run > 1 else ""
        cells.append(f"{ratio:.2f}×{each}")
    print(f"| {label[key[0]]}{extra} | {key[1]} | " + " | ".join(cells) + " |")
for w in weights:
    if ratios[w]:
        print(f"\n{name(w)} ÷ HF {hf_dtypes[0]}: lowest {min(ratios[w]):.2f}×, highest {max(ratios[w]):.2f}×", end="")
        if rounds_run > 1:
            print(f" (medians of {rounds_run} rounds; single rounds {min(each_round[w]):.2f}–{max(each_round[w]):.2f}×)", end="")
        print()
steal = lambda r: "/".join("–" if x is None else f"{x:.0f}" for x in r["steals"])
print(f"\nSteal (% of CPU time the hypervisor took) while each was timed, round by round, HF {hf_dtypes[0]} | Easel:")
for key in sorted(base, key=lambda k: (["score", "prefill", "generate"].index(k[0]), k[1])):
    print(f"  {label[key[0]]}, batch {key[1]}: {steal(base[key])} | "
          + " | ".join(steal(easel[w][key]) for w in weights if key in easel[w]))
noise = [json.loads(l) for l in (out / "noise.jsonl").read_text().splitlines() if l.strip()]
if noise:
    print("\nThe machine around each run (steal: CPU time the hypervisor took; huge pages: 2 MiB anonymous"
          " pages faulted in, and refused):")
    for n in noise:
        print(f"  round {n['round']}, {n['side']}: {n['seconds']} s, steal {n['steal_pct']:.1f} %,"
              f" huge pages {n['thp_fault_alloc']} (refused {n['thp_fault_fallback']})")
EOF
echo "raw JSON lines: $OUT/hf-*.jsonl, $OUT/easel-*.jsonl"
