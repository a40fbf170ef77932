#!/usr/bin/env python3
"""The compact table at the end of scripts/gpu/device-run.sh: ours vs HF (same call) vs HF's
2026-11-28 figures vs the roof, then parity, tiny numerics, peak memory and step status.

  python3 scripts/gpu/summarize.py OUT_DIR
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# HF transformers 5.17 + torch 2.11 on the H100, 2026-11-28 (../shared/gpu-build.md).
HF_NOTE = {("score", 8): 114.7, ("score", 32): 142.0, ("prefill", 16): 60.5,
           ("generate", 16): 1.43, ("generate", 64): 6.33}
# Roofs: vision ~1.46 TFLOP per 448² image at ~750 TFLOP/s -> ~510 img/s (note); prefill adds
# 2 x 6.53e9 LM params x 360 tokens = 4.7 TFLOP -> ~6.2 TFLOP/img -> ~120 img/s (derived);
# decode reads ~14 GB of weights per step, ~4.7 ms at ~3 TB/s -> batch/(128 x 4.7 ms), decode only.
def roof(path: str, batch: int) -> str:
    if path == "score":
        return "~510"
    if path == "prefill":
        return "~120"
    if path == "generate":
        return f"~{batch / (128 * 0.0047):.0f}"
    return "-"


def read_jsonl(path: Path) -> list[dict]:
    out = []
    if not path.is_file():
        return out
    for line in path.read_text(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def rate(r: dict) -> float | None:
    return r.get("critiques_per_s") if r.get("path") == "generate" else r.get("images_per_s")


def fmt(x, nd=1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def smi_peaks(path: Path) -> dict[str, float]:
    """Peak memory.used (MiB) per '# step NAME' section of the nvidia-smi samples."""
    peaks: dict[str, float] = {}
    step = "start"
    if not path.is_file():
        return peaks
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("# step "):
            step = line.split()[2]
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3:
            try:
                mem = float(parts[1].split()[0])
            except (ValueError, IndexError):
                continue
            peaks[step] = max(peaks.get(step, 0.0), mem)
    return peaks


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    hf = read_jsonl(out / "hf.jsonl")
    ours = read_jsonl(out / "ours.jsonl")
    checks = read_jsonl(out / "checks.jsonl")

    def index(rows):
        d = {}
        for r in rows:
            if r.get("path") in ("score", "prefill", "generate") and "batch" in r:
                d[(r["path"], r["batch"])] = r
        return d

    H = index(hf)
    O = index([r for r in ours if r.get("impl", "ours") == "ours"])
    P = index([r for r in ours if r.get("impl") == "ours-no-easel-kernels"])
    keys = sorted(set(H) | set(O) | set(HF_NOTE), key=lambda k: (["score", "prefill", "generate"].index(k[0]), k[1]))
    print()
    print("== Qwen2-VL-7B shape, 448x448 (256 visual tokens), bf16 ==")
    print(f"{'path':9}{'batch':>6}{'ours':>11}{'HF now':>10}{'HF 11-28':>10}{'ours/HF':>9}{'roof':>7}  unit / notes")
    for k in keys:
        o, h = O.get(k), H.get(k)
        ro = rate(o) if o else None
        rh = rate(h) if h else None
        ratio = f"{ro / rh:.2f}x" if ro and rh else "-"
        unit = "critiques/s" if k[0] == "generate" else "images/s"
        notes = []
        if o and o.get("error"):
            notes.append("ours ERR")
        if h and h.get("error"):
            notes.append("HF ERR")
        if k[0] == "generate":
            if o and o.get("tokens_per_s"):
                notes.append(f"ours {o['tokens_per_s']:.0f} tok/s")
            if h and h.get("tokens_per_s"):
                notes.append(f"HF {h['tokens_per_s']:.0f} tok/s")
        p = P.get(k)
        if p and rate(p):
            notes.append(f"ours w/o Easel kernels {rate(p):.1f}")
        if h and h.get("peak_mem_gib") is not None:
            notes.append(f"HF peak {h['peak_mem_gib']:.1f} GiB")
        print(f"{k[0]:9}{k[1]:>6}{fmt(ro):>11}{fmt(rh):>10}{fmt(HF_NOTE.get(k)):>10}{ratio:>9}{roof(*k):>7}  {unit}"
              + (f"; {', '.join(notes)}" if notes else ""))
    print("roof: score ~510 (note), prefill ~120 (derived), generate = decode-only weight-read bound")

    for r in ours:
        if r.get("event") == "train_step":
            print(f"train step ({r.get('preset')}, LoRA r{r.get('lora_rank')}, batch {r.get('batch')}, "
                  f"{r.get('sequence_tokens')} tokens): {fmt(r.get('seconds_per_step'), 3)} s/step "
                  f"(first {fmt(r.get('first_step_seconds'), 2)} s), loss {fmt(r.get('loss'), 3)}")
    built = [r for r in ours if r.get("event") == "model_built"]
    if built:
        print(f"ours model build: {', '.join(fmt(r.get('seconds')) + ' s' for r in built)}")
    hb = [r for r in hf if r.get("event") == "model_built"]
    if hb:
        r = hb[0]
        print(f"HF: transformers {r.get('transformers')}, torch {r.get('torch')}, {r.get('gpu', '?')}")

    print("\n== numerics ==")
    for r in hf:
        if r.get("path") == "parity_reference":
            bf = r.get("hf_bf16_vs_f32") or {}
            print(f"HF bf16 vs HF f32 (noise floor): top1 {fmt(bf.get('top1_agreement'), 3)}, "
                  f"max|d| {fmt(bf.get('max_abs_logit_diff'), 3)} of scale {fmt(bf.get('logit_scale'), 2)}, "
                  f"median top1 margin {fmt(bf.get('top1_margin_median'), 3)}; "
                  f"checkpoint {r.get('bytes', 0) / 2**30:.1f} GiB written in {fmt(r.get('write_seconds'))} s")
    for r in checks:
        if r.get("event") == "parity":
            print(f"parity ours {r.get('dtype')} vs {r.get('reference', 'hf')}: top1 {fmt(r.get('top1_agreement'), 3)} "
                  f"({r.get('agree')}/{r.get('batch')}), max|d| {fmt(r.get('max_abs_logit_diff'), 3)} "
                  f"of scale {fmt(r.get('logit_scale'), 2)}, gaps where disagreeing "
                  f"{[round(g, 3) for g in (r.get('hf_logit_gap_where_disagreeing') or [])][:8]}")
        elif r.get("event") == "tiny_numerics":
            if r.get("error"):
                print(f"tiny {r['dump']}: {r['error']}")
            else:
                print(f"tiny {r['dump']:9} vs {r.get('against'):16} max|d| {fmt(r.get('max_abs_logit_diff'), 5)} "
                      f"rel {fmt(r.get('rel_l2'), 6)} pos-top1 {fmt(r.get('position_top1_agreement'), 3)} "
                      f"gen {r.get('generated_agree')}/{(r.get('generated_len') or ['?'])[0]}")

    peaks = smi_peaks(out / "smi.csv")
    if peaks:
        print("\npeak nvidia-smi memory.used per step (MiB): "
              + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items() if k != "start"))

    steps = [r for r in checks if r.get("event") == "step"]
    if steps:
        print("\n== steps (rc 124 = timed out) ==")
        print("  ".join(f"{r['name']}:{r.get('status')}/{r.get('seconds', 0):.0f}s" for r in steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
