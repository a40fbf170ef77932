#!/usr/bin/env bash
# The ONE script run on the device machine (H100/H200, CUDA 13 libs + PyTorch + transformers in
# /opt/torch/.venv, no Rust, no network). Needs .device/bin/easel.gz from scripts/build-cuda.sh,
# carried with the call (carry: [".device"]). See scripts/gpu/README.md for the exact call.
#
# Steps (each guarded and time-capped, so one failure does not stop the rest; a step is skipped
# when the overall budget, EASEL_GPU_BUDGET_S (default 510 s), cannot fit its minimum):
#   a  hf        HF transformers baseline at the 7B shape (vision b8/b32, prefill b16,
#                generate 128 tokens b16/b64)                                  -> hf.jsonl
#   b  mkparity  7B-shape random bf16 checkpoint + inputs + HF's first-step logits in
#                /dev/shm/parity7b or /tmp/parity7b (bf16 and an f32 reference) -> hf.jsonl
#   c1 ours-sp   easel bench model, score + prefill, batch 8,16,32,64          -> ours.jsonl
#   d  parity    easel bench parity vs HF bf16 on that checkpoint               -> checks.jsonl
#   e  tiny      easel model dump on the tiny fixture: cuda bf16, cuda f32, cpu f32, compared
#                with the HF f32 reference                                     -> checks.jsonl
#   c2 ours-gen  easel bench model, generate 128 tokens, batch 16 then 64 (open-ended cost:
#                after the cheap checks so they land even if it is slow)       -> ours.jsonl
#   ours-plain   score + prefill at b32 with EASEL_CUDA_KERNELS=0 (what our kernels buy)
#   train        easel bench train, 7B shape, LoRA r16, batch 1, 3 steps        -> ours.jsonl
#   optional, if time is left: c3 ours generate b32 and b8, d2 parity vs the HF f32 reference,
#   f nsys profile of the score path (b32, one iteration) + top kernels        -> nsys.txt
# nvidia-smi memory/utilisation is sampled every 250 ms throughout, with '# step' markers
# (smi.csv). Logs: run.log. The last thing printed is the summary table (summarize.py).
# $OUT holds at most these 8 files: hf.jsonl ours.jsonl checks.jsonl smi.csv run.log
# tiny_bf16.safetensors tiny_f32.safetensors nsys.txt.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO="$PWD"
OUT="${OUT:-/tmp/easel-device-out}"
mkdir -p "$OUT"
T0=$SECONDS
BUDGET="${EASEL_GPU_BUDGET_S:-510}"
BIN="${EASEL_BIN:-$REPO/.device/bin/easel}"
PY="${PYTHON:-python3}"
LOG="$OUT/run.log"
CHECKS="$OUT/checks.jsonl"
# The 7B parity checkpoint (~15.5 GiB): in RAM (/dev/shm) when it has room, so writing it never
# waits on the disk; else /tmp.
if [[ -n "${EASEL_PARITY_DIR:-}" ]]; then
    PARITY_DIR="$EASEL_PARITY_DIR"
elif (($(df -Pk /dev/shm 2>/dev/null | awk 'NR==2 {print $4}' || echo 0) > 24 * 1024 * 1024)); then
    PARITY_DIR=/dev/shm/parity7b
else
    PARITY_DIR=/tmp/parity7b
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
: >"$LOG"

# EASEL_DEVICE_RUN_TINY=1: the same steps at the tiny shape on the CPU (a local dry run of this
# script, with a stand-in nvidia-smi on PATH); never used on the device.
if [[ "${EASEL_DEVICE_RUN_TINY:-0}" == 1 ]]; then
    RDEV=cpu; PY_EXTRA="--tiny"
    OURS_COMMON_STR="bench model --preset tiny --random-weights --device cpu --dtype f32 --image-size 56 --new-tokens 8"
    PARITY_DIR="${EASEL_PARITY_DIR:-/tmp/parity-tiny-dry}"
else
    RDEV=cuda; PY_EXTRA=""
    OURS_COMMON_STR="bench model --preset qwen2-vl-7b --random-weights --device cuda --dtype bf16 --image-size 448 --new-tokens 128"
fi
export RDEV PY_EXTRA OURS_COMMON_STR

say() { echo "[$(date +%H:%M:%S) +$((SECONDS - T0))s] $*" | tee -a "$LOG"; }

# --- libraries: cuBLAS/cuRAND from the torch venv, libcuda.so.1 from the driver ---------------
CU13_LIB="$("$PY" -c 'import nvidia, os; print(next(d for d in (os.path.join(p, "cu13", "lib") for p in nvidia.__path__) if os.path.isdir(d)))' 2>/dev/null || true)"
[[ -d "$CU13_LIB" ]] || CU13_LIB=/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib
export LD_LIBRARY_PATH="$CU13_LIB:/usr/local/nvidia/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

nvidia-smi 2>&1 | head -n 20
say "repo $REPO, OUT $OUT, budget ${BUDGET}s, parity dir $PARITY_DIR, LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
df -h /tmp /dev/shm >>"$LOG" 2>&1; nproc >>"$LOG"; free -g >>"$LOG" 2>&1
"$PY" -c 'import torch, transformers, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__)' 2>&1 | tee -a "$LOG"
HAVE_BIN=0
# The stripped binary is ~60 MiB; it travels gzipped (the carried tree is capped at 64 MiB).
if [[ ! -x "$BIN" && -f "$BIN.gz" ]]; then
    gunzip -c "$BIN.gz" >/tmp/easel && chmod +x /tmp/easel && BIN=/tmp/easel
fi
if [[ -x "$BIN" ]]; then
    missing="$(ldd "$BIN" 2>&1 | grep 'not found' || true)"
    if [[ -n "$missing" ]]; then
        say "easel binary: missing libraries: $missing"
    else
        HAVE_BIN=1
        say "easel binary: $(stat -c %s "$BIN") bytes, libraries resolve"
    fi
else
    say "no $BIN (build with scripts/build-cuda.sh and carry .device): Rust steps will be skipped"
fi

# --- nvidia-smi sampler ------------------------------------------------------------------------
SMI="$OUT/smi.csv"
echo "# timestamp, memory.used [MiB], utilization.gpu [%]" >"$SMI"
nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 250 >>"$SMI" 2>/dev/null &
SMI_PID=$!

# --- the step runner ---------------------------------------------------------------------------
# run_step NAME CAP_S MIN_S FUNCTION: runs FUNCTION under `timeout` capped by what is left of the
# budget, skips it when less than MIN_S is left, records {"event":"step",...} in checks.jsonl.
declare -A STEP_RC=()
run_step() {
    local name=$1 cap=$2 min=$3 fn=$4
    local left=$((BUDGET - (SECONDS - T0)))
    if ((left < min)); then
        say "SKIP $name: ${left}s left, needs ${min}s"
        echo "{\"event\":\"step\",\"name\":\"$name\",\"status\":\"skipped\",\"seconds\":0}" >>"$CHECKS"
        STEP_RC[$name]=skipped
        return
    fi
    local t=$((cap < left ? cap : left)) s=$SECONDS rc
    say "START $name (timeout ${t}s)"
    echo "# step $name $(date +%s)" >>"$SMI"
    echo "===== $name =====" >>"$LOG"
    timeout -k 15 "$t" bash -c "$fn" >>"$LOG" 2>&1
    rc=$?
    STEP_RC[$name]=$rc
    say "END $name rc=$rc in $((SECONDS - s))s"
    if ((rc != 0)); then
        echo "----- last lines of run.log ($name) -----"
        tail -n 12 "$LOG" | cut -c1-300
        echo "-----"
    fi
    echo "{\"event\":\"step\",\"name\":\"$name\",\"status\":$rc,\"seconds\":$((SECONDS - s))}" >>"$CHECKS"
}
export REPO OUT BIN PY LOG CHECKS PARITY_DIR

# JSON lines of a command's stdout, tagged, into a .jsonl (other stdout lines go to the log).
# Usage: CMD | tag_json FILE '"key":"value",'
tag_json() {
    local file=$1 tag=${2:-}
    while IFS= read -r line; do
        if [[ "$line" == \{* ]]; then
            echo "{$tag${line:1}" >>"$file"
            echo "$line"
        else
            echo "$line"
        fi
    done
}
export -f tag_json

# --- a. HF baseline ------------------------------------------------------------------------------
step_hf() {
    "$PY" scripts/gpu/hf_baseline.py $PY_EXTRA --out "$OUT/hf.jsonl"
}
# --- b. parity checkpoint + HF reference -----------------------------------------------------------
step_mkparity() {
    rm -rf "$PARITY_DIR"
    "$PY" scripts/gpu/make_parity.py $PY_EXTRA --out-dir "$PARITY_DIR" --out "$OUT/hf.jsonl" && ls -la "$PARITY_DIR" && df -h /tmp
}
# --- c. ours ----------------------------------------------------------------------------------------
step_ours_sp() {
    set -o pipefail
    "$BIN" $OURS_COMMON_STR --batch 8,16,32,64 --paths score,prefill | tag_json "$OUT/ours.jsonl" '"impl":"ours",'
}
step_ours_gen() {
    set -o pipefail
    "$BIN" $OURS_COMMON_STR --batch 16,64 --paths generate | tag_json "$OUT/ours.jsonl" '"impl":"ours",'
}
step_ours_gen_more() {
    set -o pipefail
    "$BIN" $OURS_COMMON_STR --batch 32,8 --paths generate | tag_json "$OUT/ours.jsonl" '"impl":"ours",'
}
# --- d. parity --------------------------------------------------------------------------------------
step_parity() {
    set -o pipefail
    "$BIN" bench parity --model "$PARITY_DIR" --inputs "$PARITY_DIR/inputs.safetensors" --device "$RDEV" --dtype bf16 \
        | tag_json "$CHECKS" '"reference":"hf_bf16",'
}
step_parity_f32ref() {
    set -o pipefail
    "$BIN" bench parity --model "$PARITY_DIR" --inputs "$PARITY_DIR/inputs_f32ref.safetensors" --device "$RDEV" --dtype bf16 \
        | tag_json "$CHECKS" '"reference":"hf_f32",'
}
# --- e. tiny numerics ---------------------------------------------------------------------------------
step_tiny() {
    local fx=crates/model/tests/fixtures ref=crates/model/tests/fixtures/reference/hub_one_image.safetensors
    local prompt="Critique this painting: originality, color, texture, composition, content."
    if [[ ! -d $fx/tiny-hub || ! -f $ref ]]; then echo "tiny fixtures missing"; return 1; fi
    local rc=0
    for spec in "$RDEV bf16 $OUT/tiny_bf16.safetensors" "$RDEV f32 $OUT/tiny_f32.safetensors" "cpu f32 /tmp/tiny_cpu_f32.safetensors"; do
        set -- $spec
        # --pixel-values-from: HF's own pixel values for a.png, so the comparison with HF measures
        # the model alone (our resize differs from PIL's by up to 0.015 in a pixel value, which
        # moves the tiny logits by ~0.015; the model itself agrees to ~1e-5 in f32).
        "$BIN" model dump --model $fx/tiny-hub --image $fx/images/a.png --pixel-values-from "$ref" \
            --prompt "$prompt" --max-new-tokens 12 --ignore-eos --device "$1" --dtype "$2" --out "$3" || rc=1
    done
    "$PY" scripts/gpu/compare_tiny.py --ref "$ref" --base cpu_f32=/tmp/tiny_cpu_f32.safetensors \
        cuda_bf16="$OUT/tiny_bf16.safetensors" cuda_f32="$OUT/tiny_f32.safetensors" | tag_json "$CHECKS" || rc=1
    return $rc
}
# --- f. nsys --------------------------------------------------------------------------------------------
step_nsys() {
    local nsys
    nsys="$(command -v nsys || ls /opt/nvidia/nsight-systems*/bin/nsys /usr/local/cuda/bin/nsys /opt/nvidia/nsight-compute/*/host/target-linux-x64/nsys 2>/dev/null | head -n1)"
    if [[ -z "$nsys" ]]; then echo "no nsys on this machine" | tee "$OUT/nsys.txt"; return 0; fi
    rm -f /tmp/easel-nsys.*
    "$nsys" profile -o /tmp/easel-nsys --force-overwrite true --trace cuda --sample none --cpuctxsw none \
        "$BIN" $OURS_COMMON_STR --batch 32 --paths score --iters 1 >/dev/null || true
    local rep
    rep="$(ls /tmp/easel-nsys.nsys-rep 2>/dev/null || true)"
    if [[ -z "$rep" ]]; then echo "nsys wrote no report ($(ls /tmp/easel-nsys.* 2>/dev/null))" | tee "$OUT/nsys.txt"; return 1; fi
    "$nsys" stats --report cuda_gpu_kern_sum --report cuda_api_sum --format table "$rep" >"$OUT/nsys.txt" 2>&1
    grep -A 28 -i 'cuda_gpu_kern_sum' "$OUT/nsys.txt" | cut -c1-220
}
# --- g. one LoRA training step at the 7B shape ----------------------------------------------------
step_train() {
    set -o pipefail
    if [[ "$RDEV" == cuda ]]; then
        "$BIN" bench train --preset qwen2-vl-7b --random-weights --device cuda --dtype bf16 --lora-rank 16 \
            --batch 1 --image-size 448 --steps 3 | tag_json "$OUT/ours.jsonl" '"impl":"ours",'
    else
        "$BIN" bench train --preset tiny --random-weights --device cpu --dtype f32 --lora-rank 4 \
            --batch 1 --image-size 56 --steps 2 | tag_json "$OUT/ours.jsonl" '"impl":"ours",'
    fi
}
# --- h. the score path without Easel's own CUDA kernels (what they buy) --------------------------
step_ours_plain() {
    set -o pipefail
    EASEL_CUDA_KERNELS=0 "$BIN" $OURS_COMMON_STR --batch 32 --paths score,prefill \
        | tag_json "$OUT/ours.jsonl" '"impl":"ours-no-easel-kernels",'
}
export -f step_train step_ours_plain step_hf step_mkparity step_ours_sp step_ours_gen step_ours_gen_more step_parity step_parity_f32ref step_tiny step_nsys

#         name       cap  min  function
run_step  hf         200  60   step_hf
run_step  mkparity   180  60   step_mkparity
if ((HAVE_BIN)); then
    run_step ours-sp    120  30   step_ours_sp
    if [[ -f "$PARITY_DIR/inputs.safetensors" ]]; then
        run_step parity 100  30   step_parity
    fi
    run_step tiny       60   15   step_tiny
    run_step ours-gen   240  45   step_ours_gen
    run_step ours-plain 60   30   step_ours_plain
    run_step train      90   40   step_train
    # Optional extras, only with time to spare.
    run_step ours-gen-more 90 60  step_ours_gen_more
    if [[ -f "$PARITY_DIR/inputs_f32ref.safetensors" ]]; then
        run_step parity-f32ref 70 50 step_parity_f32ref
    fi
    run_step nsys       90   75   step_nsys
fi

kill "$SMI_PID" 2>/dev/null
wait "$SMI_PID" 2>/dev/null
[[ "$PARITY_DIR" == /dev/shm/* ]] && rm -rf "$PARITY_DIR"
say "all steps done in $((SECONDS - T0))s; $OUT: $(ls "$OUT" | tr '\n' ' ')"
"$PY" scripts/gpu/summarize.py "$OUT" 2>&1 | tee -a "$LOG"
exit 0
