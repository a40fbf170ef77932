#!/usr/bin/env bash
# Builds `easel` with candle's CUDA backend on a machine WITHOUT a GPU or a system CUDA toolkit,
# for the H100/H200 device machine (sm_90a, driver 580 = CUDA 13.0). Idempotent: each stage is
# skipped when its output is already there and current.
#
#   scripts/build-cuda.sh              toolkit + stub + full build + checks (the usual call)
#   scripts/build-cuda.sh --toolkit    only the pip toolkit, CUDA_ROOT folder and libcuda stub
#   scripts/build-cuda.sh --kernels    toolkit, then pre-build candle-core's CUDA kernels only
#                                      (the slow nvcc part) so a later full build is quick
#   scripts/build-cuda.sh --check      only the GPU-free checks on .device/bin/easel
#
# Outputs (all git-ignored):
#   .cuda/venv      pinned CUDA 13.0 wheels from PyPI (nvcc, nvvm, crt, cudart, cccl, nvrtc,
#                   cublas, curand)
#   .cuda/root      a CUDA_ROOT-shaped folder: bin/ include/ nvvm/ links into the wheels,
#                   lib64/ unversioned .so links, lib64/stubs/libcuda.so generated from the
#                   driver entry points cudarc names
#   target-cuda/    the cargo target dir of the CUDA build (keeps the CPU builds in target/ warm)
#   target-cuda/easel.stripped   the stripped binary (~68 MiB: candle's static MoE/GGUF cubins
#                   alone are 33 MB), what the checks read
#   .device/bin/easel.gz   the same, gzipped (~18 MiB), to carry to the device machine
#                   (carry: [".device"]; the carried tree is capped at 64 MiB, so the plain binary
#                   cannot travel); scripts/gpu/device-run.sh unpacks it to /tmp/easel
#
# The recipe and its pitfalls are in ../shared/gpu-build.md (nvvm must stay 13.0: a newer one
# emits PTX the 580 driver rejects). CI never runs this; the default build stays CPU-only.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODE="${1:-all}"
case "$MODE" in
    all | --all) MODE=all ;;
    --toolkit | --kernels | --check) MODE="${MODE#--}" ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "unknown option $MODE (try --help)" >&2; exit 2 ;;
esac

CUDA_DIR="$ROOT/.cuda"
VENV="$CUDA_DIR/venv"
CUDA_ROOT_DIR="$CUDA_DIR/root"
TARGET_DIR="$ROOT/target-cuda"
STRIPPED="$TARGET_DIR/easel.stripped"
OUT_GZ="$ROOT/.device/bin/easel.gz"
PYTHON="${PYTHON:-python3}"

# Pinned: unpinned nvidia-nvvm pulls 13.5, whose PTX (.version 9.x > 9.0) the device's driver
# (580, CUDA 13.0) rejects at module load.
WHEELS=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.1.0.3
    nvidia-curand==10.4.0.35
)

log() { printf '[build-cuda %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# --- 1. the toolkit from PyPI -------------------------------------------------------------------
install_toolkit() {
    local stamp="$VENV/.easel-wheels" want
    want="$(printf '%s\n' "${WHEELS[@]}")"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$VENV/bin/python" ]]; then
        log "toolkit wheels already installed in $VENV"
        return
    fi
    log "installing the pinned CUDA 13.0 wheels into $VENV"
    [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir "${WHEELS[@]}"
    printf '%s\n' "$want" >"$stamp"
}

cu13_dir() {
    local d
    d="$(ls -d "$VENV"/lib/python3*/site-packages/nvidia/cu13 2>/dev/null | head -n1)"
    [[ -n "$d" && -d "$d" ]] || { echo "no nvidia/cu13 folder under $VENV" >&2; exit 1; }
    echo "$d"
}

# --- 2. a CUDA_ROOT-shaped folder -----------------------------------------------------------------
make_cuda_root() {
    local cu13 lib
    cu13="$(cu13_dir)"
    mkdir -p "$CUDA_ROOT_DIR/lib64/stubs"
    for d in bin include nvvm; do
        ln -sfn "$cu13/$d" "$CUDA_ROOT_DIR/$d"
    done
    # lib64: unversioned names for the linker (-lcudart -lcublas -lcublasLt -lcurand -lnvrtc),
    # plus the versioned ones so a host-side test run could resolve them.
    for lib in cudart cublas cublasLt curand nvrtc; do
        local real
        real="$(ls "$cu13"/lib/lib"$lib".so.* 2>/dev/null | grep -E "/lib$lib\.so\.[0-9]+$" | head -n1 || true)"
        [[ -n "$real" ]] || { echo "lib$lib.so.N not found in $cu13/lib" >&2; exit 1; }
        ln -sfn "$real" "$CUDA_ROOT_DIR/lib64/lib$lib.so"
        ln -sfn "$real" "$CUDA_ROOT_DIR/lib64/$(basename "$real")"
    done
    "$CUDA_ROOT_DIR/bin/nvcc" --version | tail -n2 >&2
}

# --- 3. cudarc's source (for the stub's entry-point names) ----------------------------------------
cudarc_sys_rs() {
    local f
    f="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19*/src/driver/sys/mod.rs 2>/dev/null | sort -V | tail -n1 || true)"
    if [[ -z "$f" ]]; then
        log "fetching crates (cudarc's source is not unpacked yet)"
        cargo fetch --locked >&2 || cargo fetch >&2
        # cargo fetch downloads but unpacks lazily: a metadata call with the feature unpacks it.
        cargo metadata --format-version 1 --features easel-cli/cuda >/dev/null 2>&1 || true
        f="$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-0.19*/src/driver/sys/mod.rs 2>/dev/null | sort -V | tail -n1 || true)"
    fi
    if [[ -z "$f" ]]; then
        # Last resort: unpack the downloaded .crate ourselves.
        local crate
        crate="$(ls "$HOME"/.cargo/registry/cache/*/cudarc-0.19*.crate 2>/dev/null | sort -V | tail -n1 || true)"
        [[ -n "$crate" ]] || { echo "cudarc 0.19 is neither unpacked nor downloaded" >&2; exit 1; }
        local dest
        dest="$(dirname "$crate")"; dest="${dest/\/cache\//\/src\/}"
        mkdir -p "$dest" && tar -xzf "$crate" -C "$dest"
        f="$(ls -d "$dest"/cudarc-0.19*/src/driver/sys/mod.rs | sort -V | tail -n1)"
    fi
    echo "$f"
}

# --- 4. the libcuda.so link stub ------------------------------------------------------------------
make_stub() {
    local sys stub="$CUDA_ROOT_DIR/lib64/stubs/libcuda.so" src="$CUDA_DIR/libcuda_stub.c" names
    sys="$(cudarc_sys_rs)"
    if [[ -f "$stub" && "$stub" -nt "$sys" && "$stub" -nt "$0" ]]; then
        log "libcuda stub up to date ($(grep -c '^void' "$src") entry points)"
        return
    fi
    names="$(grep -o 'load::<_F>(b\?"cu[A-Za-z0-9_]*' "$sys" | sed 's/.*"//' | sort -u)"
    local n
    n="$(wc -l <<<"$names")"
    [[ "$n" -gt 100 ]] || { echo "only $n driver entry points found in $sys" >&2; exit 1; }
    {
        echo "/* Generated by scripts/build-cuda.sh from $(basename "$(dirname "$(dirname "$(dirname "$(dirname "$sys")")")")"): link-time stand-in"
        echo "   for the driver library; the real libcuda.so.1 is used at run time. */"
        while read -r name; do echo "void $name(void) {}"; done <<<"$names"
    } >"$src"
    gcc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$stub" "$src"
    ln -sfn libcuda.so "$CUDA_ROOT_DIR/lib64/stubs/libcuda.so.1"
    log "generated $stub with $n entry points"
}

cuda_env() {
    export CUDA_ROOT="$CUDA_ROOT_DIR" CUDA_PATH="$CUDA_ROOT_DIR" CUDA_HOME="$CUDA_ROOT_DIR"
    export PATH="$CUDA_ROOT_DIR/bin:$PATH"
    export NVCC="$CUDA_ROOT_DIR/bin/nvcc"
    export CUDA_COMPUTE_CAP=90
    export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"
    export CARGO_TARGET_DIR="$TARGET_DIR"
    # The linker finds -lcuda in stubs/ and the rest in lib64/.
    export LIBRARY_PATH="$CUDA_ROOT_DIR/lib64:$CUDA_ROOT_DIR/lib64/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
}

build_kernels() {
    cuda_env
    log "pre-building candle-core with cuda (nvcc on candle-kernels; ~10 min on 2 cores from scratch)"
    local t0=$SECONDS
    cargo build --release -p candle-core --features cuda
    log "candle-core cuda build took $((SECONDS - t0)) s"
}

build_easel() {
    cuda_env
    log "building easel-cli with --features cuda into $TARGET_DIR"
    local t0=$SECONDS
    cargo build --release -p easel-cli --features cuda
    log "easel-cli cuda build took $((SECONDS - t0)) s"
    strip -o "$STRIPPED.tmp" "$TARGET_DIR/release/easel"
    mv -f "$STRIPPED.tmp" "$STRIPPED"
    mkdir -p "$(dirname "$OUT_GZ")"
    gzip -9 -c "$STRIPPED" >"$OUT_GZ.tmp"
    mv -f "$OUT_GZ.tmp" "$OUT_GZ"
    # A plain binary beside it would push the carried .device over 64 MiB.
    rm -f "$ROOT/.device/bin/easel"
    log "wrote $OUT_GZ ($(du -h "$OUT_GZ" | cut -f1); stripped $(du -h "$STRIPPED" | cut -f1))"
}

# --- 5. checks that need no GPU --------------------------------------------------------------------
check_binary() {
    local bin="$STRIPPED" ok=1
    if [[ ! -f "$bin" && -f "$OUT_GZ" ]]; then
        mkdir -p "$TARGET_DIR" && gunzip -c "$OUT_GZ" >"$bin" && chmod +x "$bin"
    fi
    [[ -x "$bin" ]] || { echo "no binary at $bin: run scripts/build-cuda.sh first" >&2; exit 1; }
    if [[ -f "$OUT_GZ" ]]; then
        cmp -s "$bin" <(gunzip -c "$OUT_GZ") || { echo "  $OUT_GZ is not the same binary as $bin"; ok=0; }
        echo "carried: $OUT_GZ ($(stat -c %s "$OUT_GZ") bytes); .device holds $(du -sb "$ROOT/.device" | cut -f1) bytes (limit 64 MiB with the tree)"
    else
        echo "  no $OUT_GZ to carry"; ok=0
    fi
    echo "binary: $bin ($(stat -c %s "$bin") bytes, $(du -h "$bin" | cut -f1))"
    echo "NEEDED:"
    readelf -d "$bin" | awk '/NEEDED/ {print "  " $NF}'
    for lib in libcuda.so.1 libcublas.so.13 libcurand.so.10; do  # (+ libcudart.so.13, libstdc++: both on the device)
        readelf -d "$bin" | grep -q "\[$lib\]" || { echo "  missing NEEDED $lib (not a CUDA build?)"; ok=0; }
    done
    local versions targets
    versions="$(grep -a -o '\.version [0-9.]*' "$bin" | sort -u | tr '\n' ' ')"
    targets="$(grep -a -o '\.target sm_[0-9a-z]*' "$bin" | sort -u | tr '\n' ' ')"
    echo "PTX: $versions| $targets"
    if [[ -z "$versions" ]]; then
        echo "  no PTX found in the binary"; ok=0
    elif grep -qv '^\.version 9\.0$' < <(grep -a -o '\.version [0-9.]*' "$bin" | sort -u); then
        echo "  PTX newer than 9.0: the 580 driver (CUDA 13.0) will reject it (nvvm not pinned?)"; ok=0
    fi
    # candle's kernels are built for sm_90a (CUDA_COMPUTE_CAP=90 -> 90a); our own
    # (crates/model/kernels, -arch=compute_90) for sm_90: both load on an H100/H200.
    if [[ -n "$targets" ]] && grep -a -o '\.target sm_[0-9a-z]*' "$bin" | sort -u | grep -qvE '^\.target sm_90a?$'; then
        echo "  PTX for a target other than sm_90/sm_90a (CUDA_COMPUTE_CAP=90 not applied?)"; ok=0
    fi
    [[ $ok == 1 ]] && echo "checks: OK" || { echo "checks: FAILED"; return 1; }
}

case "$MODE" in
    toolkit) install_toolkit; make_cuda_root; make_stub ;;
    kernels) install_toolkit; make_cuda_root; make_stub; build_kernels ;;
    check) check_binary ;;
    all)
        T0=$SECONDS
        install_toolkit; make_cuda_root; make_stub; build_easel; check_binary
        log "done in $((SECONDS - T0)) s"
        ;;
esac
