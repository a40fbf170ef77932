#!/usr/bin/env python3
"""Generate the zero-shot scoring fixture for Easel's Rust Qwen2-VL port.

Writes ``crates/model/tests/fixtures/zero-shot/`` (``--out DIR`` to change):

* ``checkpoint/``: a tiny random-weight Qwen2-VL checkpoint in the legacy hub layout
  (flat config.json, two bf16 safetensors shards + index, hub tensor names, tied
  embeddings) that uses the ids of the *real* Qwen tokenizer (vocab_size 151936).
  The embedding matrix is zero except the rows of the tokens the reference prompts
  use and of the five level words, so the shards compress to almost nothing.
  ``tokenizer.json`` is NOT part of the fixture (11 MB): the Rust test copies
  ``.cache/qwen-tokenizer/tokenizer.json`` next to the checkpoint, and so does this
  script (into a temporary folder) before loading the checkpoint with transformers.
* ``images/exact.png`` (84x56, not resized by the processor) and
  ``images/resized.png`` (150x97, resized).
* ``reference.json``: for both images and each of the six dimensions, the rendered
  prompt, the processor's input ids, the logits of the five level words at the last
  position, their softmax, the score and its uncertainty, computed by HF transformers
  ``Qwen2VLForConditionalGeneration`` in float32 on CPU (eager attention).

The scoring method (what the Rust code must reproduce):

    for each dimension phrase d:
        messages = [{"role": "user", "content": [{"type": "image"},
                     {"type": "text", "text": f"Rate the {d} of this artwork."}]}]
        text = chat_template(messages, add_generation_prompt=True) + f"The {d} of this artwork is"
        logits = model(processor(text, image)).logits[0, -1, level_token_ids]
        p = softmax(logits);  mean = sum(p_i * w_i) with w = [1, .75, .5, .25, 0]
        score = 1 + 99 * mean;  uncertainty = 99 * sqrt(sum(p_i * (w_i - mean)^2))

Deterministic (fixed seeds) and offline.  Needs the real Qwen tokenizer at
``.cache/qwen-tokenizer/tokenizer.json`` (``scripts/fetch-qwen-tokenizer.sh``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file as save_pt
from tokenizers import Tokenizer

import transformers
from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
from transformers.image_utils import load_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import (  # noqa: E402  (same folder; reuse the tiny-hub helpers)
    CHAT_TEMPLATE,
    CLIP_MEAN,
    CLIP_STD,
    hub_name,
    load_processor,
    write_json,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "crates" / "model" / "tests" / "fixtures" / "zero-shot"
DEFAULT_QWEN_TOKENIZER = REPO_ROOT / ".cache" / "qwen-tokenizer" / "tokenizer.json"
TINY_HUB_CHAT_TEMPLATE = REPO_ROOT / "crates" / "model" / "tests" / "fixtures" / "tiny-hub" / "chat_template.json"

# --------------------------------------------------------------------------------------
# The scoring method
# --------------------------------------------------------------------------------------

LEVEL_WORDS = [" excellent", " good", " fair", " poor", " bad"]
LEVEL_WEIGHTS = [1.0, 0.75, 0.5, 0.25, 0.0]
DIMENSIONS = [
    ("overall", "overall quality"),
    ("originality", "originality"),
    ("color", "color"),
    ("texture", "texture"),
    ("composition", "composition"),
    ("content", "content"),
]


def question(phrase: str) -> str:
    return f"Rate the {phrase} of this artwork."


def answer_prefix(phrase: str) -> str:
    return f"The {phrase} of this artwork is"  # no trailing space: the level words start with one


def score_levels(level_logits: list[float]) -> tuple[list[float], float, float]:
    """softmax over the five level logits (float64), score in [1, 100], uncertainty."""
    z = np.asarray(level_logits, dtype=np.float64)
    e = np.exp(z - z.max())
    p = e / e.sum()
    w = np.asarray(LEVEL_WEIGHTS, dtype=np.float64)
    mean = float((p * w).sum())
    var = float((p * (w - mean) ** 2).sum())
    return [float(x) for x in p], 1.0 + 99.0 * mean, 99.0 * math.sqrt(var)


# --------------------------------------------------------------------------------------
# Checkpoint (real Qwen special ids, tiny dimensions)
# --------------------------------------------------------------------------------------

# Ids of the real Qwen2-VL tokenizer (checked against tokenizer.json in main()).
REAL_SPECIAL_IDS = {
    "<|endoftext|>": 151643,
    "<|im_start|>": 151644,
    "<|im_end|>": 151645,
    "<|vision_start|>": 151652,
    "<|vision_end|>": 151653,
    "<|vision_pad|>": 151654,
    "<|image_pad|>": 151655,
    "<|video_pad|>": 151656,
}
VOCAB_SIZE = 151936  # Qwen2-VL-2B's padded embedding size
TEXT_HIDDEN = 32
MROPE_SECTION = [1, 1, 2]  # sums to head_dim/2 = (32/4)/2 = 4
MIN_PIXELS = 56 * 56  # 3136
MAX_PIXELS = 112 * 112  # 12544

WEIGHT_SEED = 7
IMAGE_SEED = 11


def config_dict() -> dict:
    """Flat config.json, field for field like Qwen/Qwen2-VL-7B-Instruct/config.json."""
    ids = REAL_SPECIAL_IDS
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "vision_token_id": ids["<|vision_pad|>"],
        "image_token_id": ids["<|image_pad|>"],
        "video_token_id": ids["<|video_pad|>"],
        "hidden_act": "silu",
        "hidden_size": TEXT_HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": 64,
        "max_position_embeddings": 32768,
        "max_window_layers": 2,
        "model_type": "qwen2_vl",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,
            "embed_dim": 32,
            "mlp_ratio": 2,
            "num_heads": 2,
            "in_chans": 3,
            "hidden_size": TEXT_HIDDEN,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": MROPE_SECTION},
        "vocab_size": VOCAB_SIZE,
    }


def generation_config_dict() -> dict:
    """Qwen2-VL-7B-Instruct's generation_config.json (the real ids)."""
    ids = REAL_SPECIAL_IDS
    return {
        "bos_token_id": ids["<|endoftext|>"],
        "pad_token_id": ids["<|endoftext|>"],
        "do_sample": True,
        "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
        "repetition_penalty": 1.05,
        "temperature": 0.1,
        "top_k": 1,
        "top_p": 0.001,
        "transformers_version": "4.41.2",
    }


def preprocessor_config_dict() -> dict:
    return {
        "min_pixels": MIN_PIXELS,
        "max_pixels": MAX_PIXELS,
        "size": {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS},
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": "Qwen2VLProcessor",
    }


def randomize_weights(model: Qwen2VLForConditionalGeneration, seed: int, used_ids: list[int]) -> None:
    """Overwrite every parameter from a seeded generator (independent of HF's init):

      * norm weights = 1 + 0.2 * randn  (LayerNorm and RMSNorm)
      * biases       = 0.1 * randn
      * linear/conv  = gain * randn / sqrt(fan_in), gain 1, except o_proj/down_proj
                       (gain 3: the attention/MLP branches, which carry the image and the
                       dimension words to the last position, must dominate the residual
                       stream, else every prompt ends in the same " is" embedding and
                       gets nearly the same levels)
      * embed_tokens = 0.5 * randn on the rows in `used_ids`, 0 elsewhere (tied with
                       lm_head: the level logits are final_hidden . embed[level_id])
    """
    g = torch.Generator().manual_seed(seed)
    norm_params = set()
    for mname, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("RMSNorm"):
            norm_params.add(f"{mname}.weight")
    keep = torch.zeros(VOCAB_SIZE, dtype=torch.bool)
    keep[torch.tensor(sorted(set(used_ids)))] = True
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):  # tied params appear once
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name in norm_params:
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            elif name.endswith("embed_tokens.weight"):
                noise[~keep] = 0.0
                p.copy_(0.5 * noise)
            else:
                fan_in = p[0].numel()
                gain = 3.0 if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
                p.copy_(gain * noise / math.sqrt(fan_in))


def write_weights(model: Qwen2VLForConditionalGeneration, out: Path) -> None:
    """Two bf16 shards in the hub spelling (tied: no lm_head.weight) + index."""
    sd = {hub_name(k): v.detach().to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}
    sd.pop("lm_head.weight", None)  # tied to model.embed_tokens.weight
    shard1 = {k: v for k, v in sd.items() if k.startswith("visual.") or k == "model.embed_tokens.weight"}
    shard2 = {k: v for k, v in sd.items() if k not in shard1}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for fname, shard in zip(names, [shard1, shard2]):
        shard = dict(sorted(shard.items()))
        save_pt(shard, str(out / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in shard})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    write_json(out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))})


def write_checkpoint_files(out: Path) -> None:
    """Everything but the weights (and tokenizer.json)."""
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", config_dict())
    write_json(out / "generation_config.json", generation_config_dict())
    write_json(out / "preprocessor_config.json", preprocessor_config_dict())
    shutil.copyfile(TINY_HUB_CHAT_TEMPLATE, out / "chat_template.json")
    assert json.loads((out / "chat_template.json").read_text())["chat_template"] == CHAT_TEMPLATE


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def structured_image(w: int, h: int, seed: int) -> Image.Image:
    """Gradients, a few shapes and seeded noise: visible structure at every patch."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255.0 * x / (w - 1)
    g = 255.0 * (1 - y / (h - 1)) * (0.6 + 0.4 * np.cos(2 * np.pi * x / w))
    b = 127.5 + 127.5 * np.sin(2 * np.pi * (x - 1.5 * y) / (0.7 * max(w, h)))
    rgb = np.stack([r, g, b], -1) + rng.normal(0.0, 12.0, (h, w, 3))
    img = Image.fromarray(rgb.round().clip(0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.rectangle([w // 10, h // 5, w // 2, h // 2 + h // 8], fill=(245, 235, 25), outline=(0, 0, 0))
    d.ellipse([w // 2, h // 4, w - w // 12, h - h // 8], fill=(25, 50, 190), outline=(255, 255, 255))
    d.polygon([(w // 3, h - 2), (w // 2, h // 3), (2 * w // 3, h - 2)], fill=(200, 30, 60))
    d.line([0, 0, w - 1, h - 1], fill=(255, 255, 255), width=2)
    return img


IMAGES = {"exact.png": (84, 56), "resized.png": (150, 97)}  # width x height


def make_images(img_dir: Path) -> None:
    img_dir.mkdir(parents=True, exist_ok=True)
    for i, (name, (w, h)) in enumerate(IMAGES.items()):
        structured_image(w, h, IMAGE_SEED + i).save(img_dir / name, optimize=False)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def common_prefix_len(seqs: list[list[int]]) -> int:
    n = 0
    for col in zip(*seqs):
        if any(c != col[0] for c in col):
            break
        n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--qwen-tokenizer", type=Path, default=DEFAULT_QWEN_TOKENIZER,
                    help="real Qwen tokenizer.json (scripts/fetch-qwen-tokenizer.sh)")
    args = ap.parse_args()
    if not args.qwen_tokenizer.is_file():
        raise SystemExit(f"{args.qwen_tokenizer} missing: run scripts/fetch-qwen-tokenizer.sh")

    t0 = time.time()
    torch.set_grad_enabled(False)
    out: Path = args.out
    ckpt, img_dir = out / "checkpoint", out / "images"
    for d in (ckpt, img_dir):
        if d.exists():
            shutil.rmtree(d)
    out.mkdir(parents=True, exist_ok=True)

    real = Tokenizer.from_file(str(args.qwen_tokenizer))
    for tok, i in REAL_SPECIAL_IDS.items():
        assert real.token_to_id(tok) == i, (tok, real.token_to_id(tok), i)
    assert real.get_vocab_size(with_added_tokens=True) <= VOCAB_SIZE

    # First token of each level word, as the Rust side will take it.
    level_ids = []
    for word in LEVEL_WORDS:
        enc = real.encode(word, add_special_tokens=False).ids
        print(f"level {word!r}: ids {enc} {[real.id_to_token(i) for i in enc]}")
        level_ids.append(enc[0])
    assert len(set(level_ids)) == 5, f"level words share a first token: {level_ids}"

    make_images(img_dir)
    write_checkpoint_files(ckpt)

    with tempfile.TemporaryDirectory(prefix="easel-zero-shot-") as tmp:
        # transformers loads from a copy of the checkpoint with the real tokenizer.json next
        # to it, exactly what the Rust test does.
        load_dir = Path(tmp) / "checkpoint"
        shutil.copytree(ckpt, load_dir)
        shutil.copyfile(args.qwen_tokenizer, load_dir / "tokenizer.json")
        proc = load_processor(load_dir)
        ip = proc.image_processor
        assert (ip.size.shortest_edge, ip.size.longest_edge) == (MIN_PIXELS, MAX_PIXELS), ip.size
        for tok, i in REAL_SPECIAL_IDS.items():
            assert proc.tokenizer.convert_tokens_to_ids(tok) == i, tok

        # ---- prompts and processor inputs (needed first: they decide the embedding rows) ----
        prepared = {}
        for fname, (w, h) in IMAGES.items():
            image = load_image(str(img_dir / fname))
            assert image.size == (w, h)
            per_dim = {}
            for key, phrase in DIMENSIONS:
                messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question(phrase)}]}]
                chat = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
                assert chat.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"), chat
                assert chat.endswith("<|im_start|>assistant\n"), chat
                prompt = chat + answer_prefix(phrase)
                inputs = proc(text=[prompt], images=[image], return_tensors="pt")
                grid = inputs["image_grid_thw"][0].tolist()
                n_pad = grid[0] * grid[1] * grid[2] // 4
                ids = inputs["input_ids"][0].tolist()
                assert ids.count(REAL_SPECIAL_IDS["<|image_pad|>"]) == n_pad
                # The Rust side tokenizes with tokenizer.json (tokenizers crate): same ids?
                expanded = prompt.replace("<|image_pad|>", "<|image_pad|>" * n_pad)
                assert real.encode(expanded, add_special_tokens=False).ids == ids, f"{fname}/{key}: tokenizer.json ids != processor ids"
                per_dim[key] = (prompt, inputs, grid)
            grids = {tuple(g) for _, _, g in per_dim.values()}
            assert len(grids) == 1
            grid = list(grids.pop())
            resized = [grid[2] * 14, grid[1] * 14] != [w, h]
            prepared[fname] = (grid, resized, per_dim)
        assert prepared["exact.png"][1] is False, "exact.png must not be resized"
        assert prepared["resized.png"][1] is True, "resized.png must be resized"

        used_ids = set(level_ids)
        for _, _, per_dim in prepared.values():
            for _, inputs, _ in per_dim.values():
                used_ids.update(inputs["input_ids"][0].tolist())
        used_ids = sorted(used_ids)

        # ---- random model -> bf16 shards ----
        torch.manual_seed(WEIGHT_SEED)
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(**config_dict())).eval()
        randomize_weights(model, WEIGHT_SEED, used_ids)
        write_weights(model, ckpt)
        del model
        for f in ckpt.glob("*.safetensors"):
            shutil.copyfile(f, load_dir / f.name)
        shutil.copyfile(ckpt / "model.safetensors.index.json", load_dir / "model.safetensors.index.json")

        # ---- reference: the bf16 checkpoint loaded in float32 ----
        model, info = Qwen2VLForConditionalGeneration.from_pretrained(
            str(load_dir), dtype=torch.float32, attn_implementation="eager", output_loading_info=True
        )
        model.eval()
        bad = {k: v for k, v in info.items() if v}
        assert not bad, f"loading info {bad}"
        assert model.dtype == torch.float32
        emb = model.get_input_embeddings().weight
        assert model.lm_head.weight.data_ptr() == emb.data_ptr(), "lm_head not tied"
        nz = (emb != 0).any(dim=1).nonzero().flatten().tolist()
        assert nz == used_ids, "embedding rows: zero/non-zero layout differs from the prompts' ids"

        cases = []
        table = []
        pixels = {}
        for fname, (grid, resized, per_dim) in prepared.items():
            # HF's pixel values of the image (the same for every dimension): the Rust test runs
            # its model path on them too, so that resampling differences (docs/MODEL.md,
            # "Preprocessing") and model differences are told apart.
            pixels[fname] = next(iter(per_dim.values()))[1]["pixel_values"].to(torch.float32).contiguous()
            dims = {}
            for key, (prompt, inputs, _) in per_dim.items():
                model.model.rope_deltas = None  # cached across calls; reset per prompt
                logits = model(**inputs, use_cache=False).logits[0, -1]
                level_logits = [float(x) for x in logits[level_ids].tolist()]
                levels, score, unc = score_levels(level_logits)
                dims[key] = {
                    "prompt": prompt,
                    "input_ids": inputs["input_ids"][0].tolist(),
                    "level_logits": level_logits,
                    "levels": levels,
                    "score": score,
                    "uncertainty": unc,
                }
                table.append((fname, key, levels, score, unc))
            cases.append({"image": fname, "resized": resized, "image_grid_thw": grid, "dimensions": dims})

    # ---- checks that make the fixture meaningful ----
    print(f"\n{'case':<12} {'dimension':<12} {'levels (excellent good fair poor bad)':<42} {'score':>8} {'uncert':>8}")
    for fname, key, levels, score, unc in table:
        print(f"{fname:<12} {key:<12} {' '.join(f'{p:.4f}' for p in levels):<42} {score:8.3f} {unc:8.3f}")
    spread = [max(lv) - min(lv) for _, _, lv, _, _ in table]
    assert sum(s > 0.05 for s in spread) >= 0.75 * len(spread), f"levels too uniform: {spread}"
    scores = [s for *_, s, _ in table]
    assert max(scores) - min(scores) > 1.0, "scores barely differ between dimensions/images"
    for c in cases:
        s = [d["score"] for d in c["dimensions"].values()]
        assert len({round(x, 3) for x in s}) == len(s), f"{c['image']}: two dimensions score alike"
    a = [d["score"] for d in cases[0]["dimensions"].values()]
    b = [d["score"] for d in cases[1]["dimensions"].values()]
    assert all(abs(x - y) > 1e-3 for x, y in zip(a, b)), "the image does not change the scores"

    print()
    pad = REAL_SPECIAL_IDS["<|image_pad|>"]
    for c in cases:
        seqs = [d["input_ids"] for d in c["dimensions"].values()]
        n = common_prefix_len(seqs)
        last_pad = max(i for i, t in enumerate(seqs[0]) if t == pad)
        assert n > last_pad, f"{c['image']}: common prefix ({n}) ends before the last image token ({last_pad})"
        assert all(seq[:n].count(pad) == seq.count(pad) for seq in seqs)
        print(f"{c['image']}: grid_thw {c['image_grid_thw']} resized={c['resized']} "
              f"image tokens {seqs[0].count(pad)}, common prefix {n} tokens (last image pad at {last_pad}), "
              f"suffix lengths {[len(s) - n for s in seqs]} (total {[len(s) for s in seqs]})")

    doc = {
        "level_words": LEVEL_WORDS,
        "level_token_ids": level_ids,
        "weights": LEVEL_WEIGHTS,
        "dimensions": [list(d) for d in DIMENSIONS],
        "cases": cases,
        "meta": {
            "how": "HF transformers Qwen2VLForConditionalGeneration, bf16 checkpoint loaded with dtype=float32, "
                   "eager attention, CPU; logits[0, -1, level_token_ids]; softmax/score/uncertainty in float64",
            "tokenizer_sha256": hashlib.sha256(args.qwen_tokenizer.read_bytes()).hexdigest(),
            "weight_seed": WEIGHT_SEED,
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
    }
    write_json(out / "reference.json", doc)
    from safetensors.torch import save_file
    save_file(pixels, str(out / "pixel_values.safetensors"), metadata={"what": "HF pixel_values per image file"})

    print("\nfiles:")
    total = 0
    for f in sorted(p for p in out.rglob("*") if p.is_file()):
        total += f.stat().st_size
        print(f"  {f.relative_to(out)}  {f.stat().st_size:,} B")
    print(f"total {total / 1e6:.2f} MB in {out}   ({time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
