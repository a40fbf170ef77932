#!/usr/bin/env python3
"""Numerics of `easel model dump` runs on the tiny fixture checkpoint: each dump against the HF
reference (crates/model/tests/fixtures/reference/hub_one_image.safetensors, computed in f32)
and, for the issue's "bf16 on GPU vs f32 on CPU", each dump against a baseline dump.

  python3 scripts/gpu/compare_tiny.py --ref REF.safetensors --base cpu_f32=/tmp/a.safetensors \
      cuda_bf16=$OUT/tiny_bf16.safetensors cuda_f32=$OUT/tiny_f32.safetensors

One JSON line per dump on stdout: max |logit diff| (all prompt positions), relative L2,
per-position top-1 agreement, and agreement of the greedy tokens (count, first mismatch).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file


def load(path: str) -> dict[str, np.ndarray]:
    return load_file(path)


def compare(a: dict, b: dict) -> dict:
    """b measured against a."""
    out: dict = {}
    la, lb = a.get("logits"), b.get("logits")
    if la is not None and lb is not None:
        v = la.shape[-1]
        la = la.reshape(-1, v).astype(np.float64)
        lb = lb.reshape(-1, lb.shape[-1]).astype(np.float64)
        if la.shape != lb.shape:
            out["logits_error"] = f"shapes differ: {la.shape} vs {lb.shape}"
        else:
            d = np.abs(la - lb)
            out["max_abs_logit_diff"] = float(d.max())
            out["mean_abs_logit_diff"] = float(d.mean())
            out["logit_scale"] = float(np.abs(la).max())
            out["rel_l2"] = float(np.linalg.norm(la - lb) / max(np.linalg.norm(la), 1e-30))
            out["position_top1_agreement"] = float((la.argmax(-1) == lb.argmax(-1)).mean())
            out["last_top1_equal"] = bool(la[-1].argmax() == lb[-1].argmax())
    ga, gb = a.get("generated_ids"), b.get("generated_ids")
    if ga is not None and gb is not None:
        ga, gb = ga.reshape(-1), gb.reshape(-1)
        n = min(len(ga), len(gb))
        eq = ga[:n] == gb[:n]
        out["generated_len"] = [int(len(ga)), int(len(gb))]
        out["generated_agree"] = int(eq.sum())
        out["generated_first_mismatch"] = None if eq.all() and len(ga) == len(gb) else int(np.argmin(eq) if not eq.all() else n)
    ia, ib = a.get("input_ids"), b.get("input_ids")
    if ia is not None and ib is not None:
        out["input_ids_equal"] = bool(ia.shape == ib.shape and (ia == ib).all())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", required=True, help="HF reference safetensors (logits, generated_ids)")
    ap.add_argument("--base", default=None, help="NAME=PATH of the baseline dump (e.g. cpu_f32=...)")
    ap.add_argument("dumps", nargs="+", help="NAME=PATH of each dump to check")
    a = ap.parse_args()

    ref = load(a.ref)
    base_name, base = None, None
    if a.base:
        base_name, path = a.base.split("=", 1)
        if Path(path).is_file():
            base = load(path)
            print(json.dumps({"event": "tiny_numerics", "dump": base_name, "against": "hf_reference_f32",
                              **compare(ref, base)}), flush=True)
        else:
            print(json.dumps({"event": "tiny_numerics", "dump": base_name, "error": f"missing {path}"}))
    status = 0
    for spec in a.dumps:
        name, path = spec.split("=", 1)
        if not Path(path).is_file():
            print(json.dumps({"event": "tiny_numerics", "dump": name, "error": f"missing {path}"}))
            status = 1
            continue
        d = load(path)
        print(json.dumps({"event": "tiny_numerics", "dump": name, "against": "hf_reference_f32", **compare(ref, d)}),
              flush=True)
        if base is not None:
            print(json.dumps({"event": "tiny_numerics", "dump": name, "against": base_name, **compare(base, d)}),
                  flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
