"""Shared pieces of the GPU benchmark's Python side (hf_baseline.py, make_parity.py).

The model shape is Qwen2-VL-7B-Instruct's, spelled exactly as `Preset::config_json` in
crates/model/src/init.rs writes it (hub flat layout, vocab 152064, special tokens from 151643:
<|vision_start|> 151652, <|vision_end|> 151653, <|image_pad|> 151655). `--tiny` uses the
`tiny` preset's shape (vocab 272, special tokens from 256) so the scripts run on a CPU in seconds.

Works with transformers 5.17 (the device machine) and 5.24 (this machine's reference venv).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]

# (hidden, intermediate, layers, heads, kv heads, tie, vision depth, vision embed, vision heads)
PRESETS = {
    "tiny": (64, 128, 2, 4, 2, False, 2, 32, 4),
    "qwen2-vl-2b": (1536, 8960, 28, 12, 2, True, 32, 1280, 16),
    "qwen2-vl-7b": (3584, 18944, 28, 28, 4, False, 32, 1280, 16),
}
VOCAB = {"tiny": 272, "qwen2-vl-2b": 151_936, "qwen2-vl-7b": 152_064}
FIRST_SPECIAL = {"tiny": 256, "qwen2-vl-2b": 151_643, "qwen2-vl-7b": 151_643}


def config_json(preset: str) -> dict:
    """Mirror of `Preset::config_json(vocab, first_special)` in crates/model/src/init.rs."""
    hidden, inter, layers, heads, kv, tie, vdepth, vembed, vheads = PRESETS[preset]
    vocab, first = VOCAB[preset], FIRST_SPECIAL[preset]
    head_dim = hidden // heads
    if head_dim == 128:
        mrope = [16, 24, 24]
    else:
        half = head_dim // 2
        mrope = [half - 2 * (3 * half // 8), 3 * half // 8, 3 * half // 8]
    special = lambda i: first + i  # noqa: E731
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "model_type": "qwen2_vl",
        "attention_dropout": 0.0,
        "bos_token_id": special(0),
        "eos_token_id": special(2),
        "vision_start_token_id": special(9),
        "vision_end_token_id": special(10),
        "vision_token_id": special(11),
        "image_token_id": special(12),
        "video_token_id": special(13),
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": inter,
        "max_position_embeddings": 32768,
        "max_window_layers": layers,
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1_000_000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": tie,
        "torch_dtype": "float32" if preset == "tiny" else "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": vdepth, "embed_dim": vembed, "num_heads": vheads, "mlp_ratio": 4,
            "in_chans": 3, "hidden_size": hidden, "patch_size": 14, "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": mrope},
        "vocab_size": vocab,
    }


def log(*args) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *args, file=sys.stderr, flush=True)


def emit(record: dict, out: Path | None = None) -> None:
    """One JSON line on stdout (and appended to `out`)."""
    line = json.dumps(record, sort_keys=False)
    print(line, flush=True)
    if out is not None:
        with open(out, "a") as f:
            f.write(line + "\n")


def hf_config(cfg: dict):
    """A transformers Qwen2VLConfig read from the hub-layout dict, the way from_pretrained would."""
    from transformers import AutoConfig

    with tempfile.TemporaryDirectory() as d:
        Path(d, "config.json").write_text(json.dumps(cfg))
        return AutoConfig.from_pretrained(d)


def build_model(cfg: dict, device: str, dtype: torch.dtype, seed: int = 0):
    """Qwen2VLForConditionalGeneration with random weights created directly on `device`:
    linear/conv/embedding weights uniform with std 0.02, norm weights 1 ± U(std 0.05), biases
    uniform with std 0.02 (the same distributions as crates/model/src/init.rs)."""
    from transformers import Qwen2VLForConditionalGeneration

    config = hf_config(cfg)
    t0 = time.time()
    kwargs = {"attn_implementation": "sdpa"}
    with torch.device(device):
        try:
            model = Qwen2VLForConditionalGeneration._from_config(config, dtype=dtype, **kwargs)
        except TypeError:  # transformers 4.x spelling
            model = Qwen2VLForConditionalGeneration._from_config(config, torch_dtype=dtype, **kwargs)
    # No .to(dtype): that would also round float32 buffers (rotary inv_freq) to bf16.
    model = model.to(device).eval()
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {dtype}:
        raise RuntimeError(f"parameters came out as {dtypes}, wanted {dtype}")
    randomize_(model, seed)
    model.model.rope_deltas = None
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    n = sum(p.numel() for p in model.parameters())
    log(f"built {n / 1e9:.3f} B params on {device} ({dtype}) in {time.time() - t0:.1f} s; "
        f"attn={getattr(model.config, '_attn_implementation', '?')}")
    return model


def _is_norm(name: str) -> bool:
    leaf = name.rsplit(".", 2)
    mod = leaf[-2] if len(leaf) >= 2 else ""
    return "norm" in mod or mod == "ln_q"


@torch.no_grad()
def randomize_(model, seed: int) -> None:
    gen_device = next(model.parameters()).device
    g = torch.Generator(device=gen_device)
    g.manual_seed(seed)
    half = math.sqrt(3.0)
    for name, p in model.named_parameters():
        if name.endswith("lm_head.weight") and getattr(model.config, "tie_word_embeddings", False):
            continue
        if _is_norm(name) and name.endswith(".weight"):
            mean, std = 1.0, 0.05
        else:
            mean, std = 0.0, 0.02
        # Fill in f32 chunks (a bf16 uniform_ on the device is fine too, but f32 keeps the
        # values identical across dtypes for the same seed).
        flat = p.view(-1)
        chunk = 1 << 26
        for i in range(0, flat.numel(), chunk):
            part = flat[i : i + chunk]
            tmp = torch.empty(part.shape, dtype=torch.float32, device=gen_device)
            tmp.uniform_(-half * std, half * std, generator=g)
            part.copy_(tmp.add_(mean))


def hub_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's tensors under the hub's names (visual.*, model.layers.*, model.embed_tokens,
    model.norm, lm_head), whatever layout this transformers version uses internally."""
    out = {}
    for name, t in model.state_dict().items():
        if name.startswith("model.visual."):
            hub = name[len("model."):]
        elif name.startswith("model.language_model."):
            hub = "model." + name[len("model.language_model."):]
        elif name.startswith("visual.") or name.startswith("model.") or name.startswith("lm_head."):
            hub = name  # already the hub's layout (transformers 4.x)
        else:
            raise ValueError(f"unexpected parameter name {name}")
        out[hub] = t
    if getattr(model.config, "tie_word_embeddings", False):
        out.pop("lm_head.weight", None)
    return out


def make_inputs(cfg: dict, batch: int, image_size: int, text_tokens: int, device: str, seed: int):
    """Random pixel values (one image of image_size² per prompt) and random prompts: text ids
    around <|vision_start|> + visual tokens × <|image_pad|> + <|vision_end|>, all rows the same
    length (no padding). Returns a dict of tensors (pixel_values f32, image_grid_thw, input_ids,
    attention_mask, mm_token_type_ids)."""
    vc = cfg["vision_config"]
    patch, merge, tps = vc["patch_size"], vc["spatial_merge_size"], vc["temporal_patch_size"]
    side = image_size // patch
    n_patches = side * side
    n_visual = n_patches // (merge * merge)
    patch_len = vc["in_chans"] * tps * patch * patch
    g = torch.Generator().manual_seed(seed)
    # Normalised pixel values lie in about [-1.8, 2.1] (CLIP mean/std); uniform over that range.
    pixel_values = torch.rand((batch * n_patches, patch_len), generator=g) * 3.9 - 1.8
    grid = torch.tensor([[1, side, side]] * batch, dtype=torch.long)
    text_vocab = min(cfg["vision_start_token_id"], cfg["vocab_size"])
    before = text_tokens // 2
    after = text_tokens - before
    rows = []
    for _ in range(batch):
        ids = torch.randint(0, text_vocab, (text_tokens,), generator=g)
        row = torch.cat([
            ids[:before],
            torch.tensor([cfg["vision_start_token_id"]]),
            torch.full((n_visual,), cfg["image_token_id"]),
            torch.tensor([cfg["vision_end_token_id"]]),
            ids[before:before + after],
        ])
        rows.append(row)
    input_ids = torch.stack(rows).long()
    mm = (input_ids == cfg["image_token_id"]).to(torch.int32)
    return {
        "pixel_values": pixel_values.to(device),
        "image_grid_thw": grid.to(device),
        "input_ids": input_ids.to(device),
        "attention_mask": torch.ones_like(input_ids).to(device),
        "mm_token_type_ids": mm.to(device),
    }


def forward_kwargs(model, inputs: dict, dtype: torch.dtype) -> dict:
    """Keyword arguments of a prefill forward, leaving out what this version does not take."""
    accepted = inspect.signature(model.forward).parameters
    kw = {
        "input_ids": inputs["input_ids"],
        "attention_mask": inputs["attention_mask"],
        "pixel_values": inputs["pixel_values"].to(dtype),
        "image_grid_thw": inputs["image_grid_thw"],
    }
    if "mm_token_type_ids" in accepted:
        kw["mm_token_type_ids"] = inputs["mm_token_type_ids"]
    return kw


def vision_forward(model, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
    out = model.model.visual(pixel_values, grid_thw=grid_thw)
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    return pooled if pooled is not None else out[0]


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def cpu_steal_ticks() -> tuple[int, int] | None:
    """(steal, all) ticks of the machine's CPUs so far, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if len(fields) < 9 or fields[0] != "cpu":
        return None
    ticks = [int(t) for t in fields[1:9]]
    return ticks[7], sum(ticks)


def median_time(fn, device: str, iters: int, warmup: int = 1) -> tuple[float, list[float], float | None]:
    """The median and every sample of `iters` timed runs after `warmup` untimed ones, and the
    share of CPU time the hypervisor took from this VM meanwhile (steal, %), where Linux says."""
    for _ in range(warmup):
        fn()
    sync(device)
    before = cpu_steal_ticks()
    samples = []
    for _ in range(max(1, iters)):
        t0 = time.perf_counter()
        fn()
        sync(device)
        samples.append(time.perf_counter() - t0)
    after = cpu_steal_ticks()
    steal = None
    if before and after:
        steal = round(100 * (after[0] - before[0]) / max(after[1] - before[1], 1), 1)
    s = sorted(samples)
    return s[len(s) // 2], samples, steal


def peak_mem_gib(device: str) -> float | None:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return None


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def environment() -> dict:
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
    env["host_threads"] = os.cpu_count()
    return env
