#!/usr/bin/env python3
"""Groups a `perf report --no-children --sort dso,symbol` (stdin) into the op classes of
scripts/gpu/hf_profile_cpu.py, so Easel's CPU profile reads beside torch's.

  perf report -i perf.data --no-children --sort dso,symbol --stdio | python3 scripts/profile/classify_perf.py
"""

import re
import sys
from collections import defaultdict

CLASSES = [
    ("matmul (gemm kernels)", ("gemm_f32::microkernel", "gemm_f16::", "gemm_common::")),
    ("matmul (Easel few-row kernels)", ("cpu::skinny", "cpu::linear")),
    ("softmax", ("softmax",)),
    ("activations", ("quick_gelu", "silu", "gelu", "sigmoid")),
    ("norms", ("layer_norm", "rms_norm", "LayerNorm", "RmsNorm")),
    ("rotary", ("rotary", "rope")),
    ("copies", ("copy_strided", "copy2d", "memmove", "memcpy", "contiguous", "index_select", "cat_")),
    ("elementwise", ("binary_map", "unary_map", "affine", "to_dtype", "cast")),
    ("allocation, page faults (kernel)", ("clear_page", "page_fault", "do_anonymous_page", "handle_mm_fault",
                                           "alloc_pages", "memcg", "folio", "unmap_page", "lruvec", "rmqueue",
                                           "free_pages", "__memset", "pte_", "zap_", "release_pages")),
    ("threads waiting/scheduling", ("rayon", "BarrierGuard", "__rust_begin_short_backtrace", "spin", "schedule",
                                    "futex", "finish_task_switch", "sched_", "LocalKey", "crossbeam")),
]


def classify(sym: str) -> str:
    for cls, keys in CLASSES:
        if any(k in sym for k in keys):
            return cls
    return "other"


def main() -> int:
    totals = defaultdict(float)
    tops = defaultdict(list)
    for line in sys.stdin:
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*?)\s*$", line)
        if not m:
            continue
        pct, dso, sym = float(m.group(1)), m.group(2), m.group(3)
        cls = classify(sym)
        totals[cls] += pct
        tops[cls].append((pct, sym[:70]))
    for cls, pct in sorted(totals.items(), key=lambda kv: -kv[1]):
        top = ", ".join(f"{s} {p:.1f}%" for p, s in sorted(tops[cls], reverse=True)[:2])
        print(f"  {cls:34} {pct:5.1f} %   ({top})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
