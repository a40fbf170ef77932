#!/usr/bin/env python3
"""The peer: HF transformers' Qwen2VLForConditionalGeneration at the real Qwen2-VL-7B shape,
random bf16 weights created on the GPU, sdpa attention, measured on the same shapes as
`easel bench model` (448x448 images -> grid (1,32,32) = 1024 patches -> 256 visual tokens;
prompt = 102 random text ids around <|vision_start|> + 256 x <|image_pad|> + <|vision_end|>
= 360 tokens, the Rust bench's default --text-tokens 102).

Measures, with a warm-up, torch.cuda.synchronize() and the median of --iters runs:
  score    vision tower only (model.model.visual) at --vision-batches      -> images/s
  prefill  one forward with pixel_values + input_ids, logits_to_keep=1     -> images/s
  generate greedy generate of exactly --new-tokens tokens (eos disabled)   -> critiques/s, tokens/s
plus peak memory (torch.cuda.max_memory_allocated) for each. One JSON line per measurement on
stdout (and appended to --out).

  python3 scripts/gpu/hf_baseline.py                     # the device run (H100, ~1.5 min)
  python3 scripts/gpu/hf_baseline.py --tiny              # tiny shape on the CPU, seconds
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qwen2vl_common import (  # noqa: E402
    build_model, config_json, emit, environment, forward_kwargs, log, make_inputs, median_time,
    peak_mem_gib, reset_peak, sync, vision_forward,
)


def ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x.strip()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny preset on the CPU (a smoke test)")
    ap.add_argument("--preset", default=None, help="tiny, qwen2-vl-2b or qwen2-vl-7b (default 7b)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "f32", "f16"])
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--text-tokens", type=int, default=102)
    ap.add_argument("--vision-batches", type=ints, default=None)
    ap.add_argument("--prefill-batches", type=ints, default=None)
    ap.add_argument("--generate-batches", type=ints, default=None)
    ap.add_argument("--new-tokens", type=int, default=None)
    ap.add_argument("--iters", type=int, default=3, help="timed runs for score and prefill")
    ap.add_argument("--gen-iters", type=int, default=2, help="timed runs for generate")
    ap.add_argument("--paths", default="score,prefill,generate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="append the JSON lines here too")
    a = ap.parse_args()

    preset = a.preset or ("tiny" if a.tiny else "qwen2-vl-7b")
    device = a.device or ("cpu" if a.tiny else "cuda")
    image_size = a.image_size or (56 if a.tiny else 448)
    vision_batches = a.vision_batches or ([2, 4] if a.tiny else [8, 32])
    prefill_batches = a.prefill_batches or ([4] if a.tiny else [16])
    generate_batches = a.generate_batches or ([2, 4] if a.tiny else [16, 64])
    new_tokens = a.new_tokens or (8 if a.tiny else 128)
    dtype = {"bf16": torch.bfloat16, "f32": torch.float32, "f16": torch.float16}[a.dtype]
    paths = set(a.paths.split(","))
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True

    cfg = config_json(preset)
    env = environment()
    log("environment", env)
    t0 = time.time()
    model = build_model(cfg, device, dtype, seed=a.seed)
    sync(device)
    params = sum(p.numel() for p in model.parameters())
    common = {"impl": "hf", "preset": preset, "device": device, "dtype": a.dtype, "image_size": image_size}
    emit({**common, "event": "model_built", "params": params, "seconds": time.time() - t0, **env}, a.out)

    failures = 0

    def guarded(what: str, batch: int, fn) -> None:
        nonlocal failures
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report and go on with the next measurement
            failures += 1
            log(f"{what} batch {batch} failed: {type(e).__name__}: {e}")
            emit({**common, "path": what, "batch": batch, "error": f"{type(e).__name__}: {str(e)[:300]}"}, a.out)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()

    with torch.inference_mode():
        if "score" in paths:
            for b in vision_batches:
                def run_vision(b=b):
                    inp = make_inputs(cfg, b, image_size, a.text_tokens, device, a.seed)
                    pv, thw = inp["pixel_values"].to(dtype), inp["image_grid_thw"]
                    reset_peak(device)
                    secs, samples, steal = median_time(lambda: vision_forward(model, pv, thw), device, a.iters)
                    emit({**common, "path": "score", "what": "vision tower only (model.model.visual)",
                          "batch": b, "seconds_per_batch": secs, "samples": samples, "steal_pct": steal,
                          "images_per_s": b / secs, "peak_mem_gib": peak_mem_gib(device)}, a.out)
                guarded("score", b, run_vision)

        if "prefill" in paths:
            for b in prefill_batches:
                def run_prefill(b=b):
                    inp = make_inputs(cfg, b, image_size, a.text_tokens, device, a.seed)
                    kw = forward_kwargs(model, inp, dtype)

                    def fwd():
                        model.model.rope_deltas = None
                        return model(**kw, use_cache=False, logits_to_keep=1)

                    reset_peak(device)
                    secs, samples, steal = median_time(fwd, device, a.iters)
                    emit({**common, "path": "prefill", "batch": b, "prompt_tokens": inp["input_ids"].shape[1],
                          "seconds_per_batch": secs, "samples": samples, "steal_pct": steal, "images_per_s": b / secs,
                          "peak_mem_gib": peak_mem_gib(device)}, a.out)
                guarded("prefill", b, run_prefill)

        if "generate" in paths:
            from transformers import GenerationConfig

            pad = cfg["bos_token_id"]
            for b in generate_batches:
                def run_generate(b=b):
                    inp = make_inputs(cfg, b, image_size, a.text_tokens, device, a.seed)
                    kw = forward_kwargs(model, inp, dtype)
                    L = inp["input_ids"].shape[1]

                    def gen(n):
                        gc = GenerationConfig(max_new_tokens=n, min_new_tokens=n, do_sample=False,
                                              eos_token_id=None, pad_token_id=pad, bos_token_id=cfg["bos_token_id"],
                                              use_cache=True, num_beams=1)
                        model.model.rope_deltas = None
                        out = model.generate(**kw, generation_config=gc)
                        if out.shape != (b, L + n):
                            raise RuntimeError(f"generate returned {tuple(out.shape)}, expected {(b, L + n)}")
                        return out

                    gen(min(4, new_tokens))  # warm-up: kernels, cache allocation, generation setup
                    reset_peak(device)
                    secs, samples, steal = median_time(lambda: gen(new_tokens), device, a.gen_iters, warmup=0)
                    emit({**common, "path": "generate", "batch": b, "prompt_tokens": L, "new_tokens": new_tokens,
                          "seconds_per_batch": secs, "samples": samples, "steal_pct": steal, "critiques_per_s": b / secs,
                          "tokens_per_s": b * new_tokens / secs, "peak_mem_gib": peak_mem_gib(device)}, a.out)
                guarded("generate", b, run_generate)

    log(f"hf_baseline done in {time.time() - t0:.1f} s ({failures} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
