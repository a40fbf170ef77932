# syntax=docker/dockerfile:1.7
# easel-worker with candle's CUDA backend (cargo feature `cuda`), for NVIDIA GPUs
# of compute capability 9.0 (H100/H200) by default. Build from the repository root:
#   docker build -f deploy/docker/worker.Dockerfile -t REGISTRY/easel/worker:VERSION .
# The CUDA toolkit version must be one the nodes' driver supports (13.0 needs
# driver >= 580). The image runs only where the NVIDIA container runtime mounts
# the driver's libcuda.so.1 (GPU nodes); it cannot start on a CPU-only machine.

ARG CUDA_VERSION=13.0.2
ARG UBUNTU=ubuntu24.04
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm

# Only a source for the Rust toolchain: rustup's binaries run on any glibc >= 2.17.
FROM ${RUST_IMAGE} AS rust

FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build
ARG CUDA_COMPUTE_CAP=90
# nvcc from the devel image compiles candle's and Easel's kernels to PTX for
# CUDA_COMPUTE_CAP; cudarc links libcuda at build time against the devel image's
# stub (LIBRARY_PATH), the real one comes from the driver at run time.
COPY --from=rust /usr/local/rustup /usr/local/rustup
COPY --from=rust /usr/local/cargo /usr/local/cargo
ENV RUSTUP_HOME=/usr/local/rustup \
    CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/cuda/bin:$PATH \
    CUDA_ROOT=/usr/local/cuda \
    NVCC=/usr/local/cuda/bin/nvcc \
    CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP} \
    LIBRARY_PATH=/usr/local/cuda/lib64/stubs
# Package versions are not pinned (DL3008): the base image is, and the mirrors
# drop superseded versions, which would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# The last step fails the build if any embedded PTX is newer than ISA 9.0 (what
# CUDA 13.0 emits), which a driver of the 580 series would refuse to load.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CUDAFORGE_THREADS="$(nproc)" cargo build --release --locked -p easel-worker --features cuda \
    && install -D -m 0755 target/release/easel-worker /out/easel-worker \
    && grep -a -o '\.version [0-9]\+\.[0-9]\+' /out/easel-worker | sort -u \
    && ! grep -a -o '\.version [0-9]\+\.[0-9]\+' /out/easel-worker | grep -qv '^\.version [1-8]\.\|^\.version 9\.0$'

# The runtime flavour carries cuBLAS, cuRAND and NVRTC, which the binary loads.
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU}
WORKDIR /app
COPY --from=build /out/easel-worker /usr/local/bin/easel-worker
COPY config/ /app/config/
COPY migrations/ /app/migrations/
ENV APP_ENVIRONMENT=production \
    APP_WORKER__DEVICE=cuda \
    APP_WORKER__DTYPE=bf16 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/easel-worker"]
