#!/usr/bin/env python3
"""Writes a full Qwen2-VL-7B-shape checkpoint with random bf16 weights plus HF transformers'
first-decoding-step results on it, for `easel bench parity`:

  OUT_DIR/config.json                     hub flat layout (model_type qwen2_vl, mrope [16,24,24])
  OUT_DIR/model-0000N-of-0000M.safetensors + model.safetensors.index.json
                                          hub tensor names: visual.*, model.layers.*,
                                          model.embed_tokens, model.norm, lm_head (bf16)
  OUT_DIR/inputs.safetensors              pixel_values [B*1024,1176] f32, image_grid_thw [B,3] i64,
                                          input_ids [B,L] i64 (equal lengths, no padding),
                                          hf_top1 [B] i64 and hf_last_logits [B,V] f32 from HF in
                                          bf16 (sdpa), plus hf_f32_top1 / hf_f32_last_logits from
                                          the same weights upcast to f32 (the bf16 noise floor)
  OUT_DIR/inputs_f32ref.safetensors       the same inputs with hf_top1 / hf_last_logits taken from
                                          the f32 run (to score ours against an f32 reference)

Weights: linear/conv/embedding uniform with std 0.02, norm weights 1 ± U(std 0.05), biases
uniform with std 0.02 (crates/model/src/init.rs's distributions), drawn on the GPU.

  python3 scripts/gpu/make_parity.py                         # device: 7B shape, B=16, /tmp/parity7b
  python3 scripts/gpu/make_parity.py --tiny --out-dir /tmp/parity-tiny   # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qwen2vl_common import (  # noqa: E402
    build_model, config_json, emit, environment, forward_kwargs, hub_state_dict, log, make_inputs, sync,
)


def write_checkpoint(model, cfg: dict, out_dir: Path, shard_bytes: int) -> dict:
    from safetensors.torch import save_file

    t0 = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("model*.safetensors*"):
        old.unlink()
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    tensors = hub_state_dict(model)
    shards: list[list[str]] = [[]]
    size = 0
    for name, t in tensors.items():
        n = t.numel() * t.element_size()
        if shards[-1] and size + n > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += n
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    weight_map = {}
    for i, names in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        cpu = {k: tensors[k].detach().to("cpu").contiguous() for k in names}
        save_file(cpu, str(out_dir / fname), metadata={"format": "pt"})
        del cpu
        weight_map.update({k: fname for k in names})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    secs = time.time() - t0
    log(f"wrote {len(tensors)} tensors, {total / 2**30:.2f} GiB in {len(shards)} shards to {out_dir} in {secs:.1f} s")
    return {"tensors": len(tensors), "bytes": total, "shards": len(shards), "write_seconds": secs}


@torch.inference_mode()
def last_logits(model, inputs: dict, dtype: torch.dtype) -> torch.Tensor:
    model.model.rope_deltas = None
    out = model(**forward_kwargs(model, inputs, dtype), use_cache=False, logits_to_keep=1)
    return out.logits[:, -1, :].float()


def stats(a: torch.Tensor, b: torch.Tensor) -> dict:
    """Agreement of b's top-1 with a's, max |a-b|, and a's top-1 margin (how near the ties are)."""
    ta, tb = a.argmax(-1), b.argmax(-1)
    top2 = a.topk(2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1]).cpu()
    return {
        "top1_agreement": (ta == tb).float().mean().item(),
        "max_abs_logit_diff": (a - b).abs().max().item(),
        "logit_scale": a.abs().max().item(),
        "rel_l2": ((a - b).norm() / a.norm()).item(),
        "top1_margin_median": margin.median().item(),
        "top1_margin_min": margin.min().item(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="tiny preset on the CPU (a smoke test)")
    ap.add_argument("--preset", default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--out-dir", type=Path, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--text-tokens", type=int, default=102)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-f32-ref", action="store_true", help="skip the f32 reference run")
    ap.add_argument("--shard-gib", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=None, help="append the JSON line here too")
    a = ap.parse_args()

    preset = a.preset or ("tiny" if a.tiny else "qwen2-vl-7b")
    device = a.device or ("cpu" if a.tiny else "cuda")
    out_dir = a.out_dir or Path("/tmp/parity-tiny" if a.tiny else "/tmp/parity7b")
    batch = a.batch or (4 if a.tiny else 16)
    image_size = a.image_size or (56 if a.tiny else 448)
    t_start = time.time()

    cfg = config_json(preset)
    log("environment", environment())
    model = build_model(cfg, device, torch.bfloat16, seed=a.seed)
    ckpt = write_checkpoint(model, cfg, out_dir, int(a.shard_gib * 2**30))

    inputs = make_inputs(cfg, batch, image_size, a.text_tokens, device, a.seed)
    t0 = time.time()
    bf16 = last_logits(model, inputs, torch.bfloat16)
    sync(device)
    bf16_s = time.time() - t0
    log(f"HF bf16 forward of {batch} prompts x {inputs['input_ids'].shape[1]} tokens: {bf16_s:.2f} s")

    record = {"impl": "hf", "path": "parity_reference", "preset": preset, "batch": batch,
              "prompt_tokens": inputs["input_ids"].shape[1], "dir": str(out_dir), **ckpt,
              "hf_bf16_forward_seconds": bf16_s}
    f32 = None
    if not a.no_f32_ref:
        try:
            model = model.to(torch.float32)
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            f32 = last_logits(model, inputs, torch.float32)
            sync(device)
            record["hf_bf16_vs_f32"] = stats(f32, bf16)
        except Exception as e:  # noqa: BLE001 - the bf16 reference is what matters
            log(f"f32 reference failed: {type(e).__name__}: {e}")
            record["f32_error"] = f"{type(e).__name__}: {str(e)[:300]}"
            f32 = None
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()

    from safetensors.torch import save_file

    base = {
        "pixel_values": inputs["pixel_values"].float().cpu().contiguous(),
        "image_grid_thw": inputs["image_grid_thw"].long().cpu().contiguous(),
        "input_ids": inputs["input_ids"].long().cpu().contiguous(),
    }
    files = {"hf_top1": bf16.argmax(-1).long().cpu(), "hf_last_logits": bf16.cpu().contiguous()}
    if f32 is not None:
        files["hf_f32_top1"] = f32.argmax(-1).long().cpu()
        files["hf_f32_last_logits"] = f32.cpu().contiguous()
    save_file({**base, **files}, str(out_dir / "inputs.safetensors"))
    if f32 is not None:
        save_file({**base, "hf_top1": files["hf_f32_top1"], "hf_last_logits": files["hf_f32_last_logits"]},
                  str(out_dir / "inputs_f32ref.safetensors"))
    top2 = bf16.topk(2, dim=-1).values
    record["hf_bf16_top1_margin_median"] = (top2[:, 0] - top2[:, 1]).median().item()
    record["hf_bf16_logit_scale"] = bf16.abs().max().item()
    record["seconds"] = time.time() - t_start
    emit(record, a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
