#!/usr/bin/env python3
"""torch.nn.functional.linear on the shapes of `cargo run --release -p easel-model --example
gemm_shapes` (a 168-token Qwen2-VL-2B prefill, the vision tower at 224²), timed the same way
(three warm-up calls, best of three runs of ten), in GFLOP/s. THREADS (default: all cores) sets
torch's thread count; run both with the same. Needs: pip install -r scripts/reference/requirements.txt
"""
import os
import time

import torch
import torch.nn.functional as F

SHAPES = [(168, 1536, 1536), (168, 1536, 256), (168, 1536, 2048), (168, 1536, 8960),
          (168, 1536, 17920), (168, 8960, 1536), (256, 1280, 3840), (256, 1280, 5120),
          (256, 5120, 1280)]


def best_of(f):
    for _ in range(3):
        f()
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(10):
            f()
        best = min(best, (time.perf_counter() - start) / 10)
    return best


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkl {torch.backends.mkl.is_available()}, mkldnn {torch.backends.mkldnn.is_available()}")
    with torch.inference_mode():
        for m, k, n in SHAPES:
            x, w = torch.randn(m, k), torch.randn(n, k) * 0.02
            s = best_of(lambda: F.linear(x, w))
            print(f"{m}x{k}x{n}: torch {s * 1e3:.2f} ms {2 * m * k * n / s / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
