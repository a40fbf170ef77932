#!/usr/bin/env python3
"""Where HF transformers spends its CPU time: torch's profiler over one score-path call (vision
tower), one prefill and one 16-token greedy generate at the shape `easel bench model` runs,
grouped into the same op classes as Easel's perf breakdown (matmul, attention, softmax, norms,
rotary, elementwise, copies). The counterpart of `perf record` on `easel bench model`
(docs/PERFORMANCE.md, "CPU against PyTorch").

  python3 scripts/gpu/hf_profile_cpu.py --preset qwen2-vl-2b --image-size 224
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qwen2vl_common import build_model, config_json, forward_kwargs, make_inputs, vision_forward  # noqa: E402

CLASSES = [
    ("attention", ("scaled_dot_product", "flash_attention", "_efficient_attention")),
    ("matmul", ("addmm", "aten::mm", "aten::bmm", "matmul", "aten::linear", "conv")),
    ("softmax", ("softmax",)),
    ("norms", ("layer_norm", "rms_norm", "aten::pow", "aten::rsqrt", "aten::mean", "aten::var")),
    ("rotary/index", ("cat", "index", "slice", "select", "gather", "arange", "cumsum")),
    ("copies", ("copy_", "contiguous", "clone", "aten::to", "_to_copy", "empty", "fill_", "zeros")),
    ("elementwise", ("aten::mul", "aten::add", "aten::sub", "aten::div", "gelu", "silu", "sigmoid", "aten::neg",
                     "aten::cos", "aten::sin", "aten::where", "aten::masked_fill", "aten::exp")),
]


def classify(name: str) -> str:
    for cls, keys in CLASSES:
        if any(k in name for k in keys):
            return cls
    return "other"


def breakdown(prof, title: str) -> None:
    # Self CPU time of every op, so nested ops (linear -> addmm) are not counted twice.
    totals: dict[str, float] = defaultdict(float)
    tops: dict[str, float] = defaultdict(float)
    for evt in prof.key_averages():
        totals[classify(evt.key)] += evt.self_cpu_time_total
        tops[evt.key] += evt.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    print(f"\n== HF {title}: {whole / 1e6:.2f} s of op time ==")
    for cls, t in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {cls:14} {t / 1e6:7.2f} s  {100 * t / whole:5.1f} %")
    print("  top ops:", ", ".join(f"{k} {100 * v / whole:.0f}%" for k, v in sorted(tops.items(), key=lambda kv: -kv[1])[:8]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="qwen2-vl-2b")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--text-tokens", type=int, default=102)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args()

    cfg = config_json(a.preset)
    model = build_model(cfg, "cpu", torch.float32, seed=0)
    inp = make_inputs(cfg, a.batch, a.image_size, a.text_tokens, "cpu", 0)
    kw = forward_kwargs(model, inp, torch.float32)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}")
    with torch.inference_mode():
        vision_forward(model, kw["pixel_values"], kw["image_grid_thw"])  # warm-up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            vision_forward(model, kw["pixel_values"], kw["image_grid_thw"])
        breakdown(prof, f"score path, batch {a.batch}")

        def prefill():
            model.model.rope_deltas = None
            return model(**kw, use_cache=False, logits_to_keep=1)

        prefill()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            prefill()
        breakdown(prof, f"prefill, batch {a.batch}")

        from transformers import GenerationConfig

        gc = GenerationConfig(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False,
                              eos_token_id=None, pad_token_id=cfg["bos_token_id"], use_cache=True, num_beams=1)
        model.model.rope_deltas = None
        model.generate(**kw, generation_config=gc)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.model.rope_deltas = None
            model.generate(**kw, generation_config=gc)
        breakdown(prof, f"generate {a.new_tokens} tokens, batch {a.batch}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
