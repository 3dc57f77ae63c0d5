"""Synthetic MiniCPM-V-2 checkpoints in the exact openbmb layout, with random weights.

``tiny``: a few MB, for tests. ``full``: the real shapes (3.43B parameters), written in bf16.
Weights are random but not trivial: norms and biases are far from 1 and 0, the resampler's
stored position table is large, so a wrong formula changes the outputs.
"""
from __future__ import annotations

import json
import math
import zlib
from collections.abc import Callable
from pathlib import Path

import torch

from ovexport.synthetic.safetensors_stream import nbytes, write_shard

from .checkpoint import INDEX, tensor_shapes
from .config import MiniCPMV2Config


# config.json of openbmb/MiniCPM-V-2 at revision 187851962daa9b63072d40ec802f597b71bff532
REAL_CONFIG: dict = {
    "_name_or_path": "openbmb/MiniCPM-V-2",
    "architectures": ["MiniCPMV"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_minicpm.MiniCPMVConfig",
                 "AutoModel": "modeling_minicpmv.MiniCPMV",
                 "AutoModelForCausalLM": "modeling_minicpmv.MiniCPMV"},
    "bos_token_id": 1, "dim_model_base": 256, "drop_vision_last_layer": True, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 2304, "image_size": 448, "initializer_range": 0.1,
    "intermediate_size": 5760, "max_position_embeddings": 4096, "max_slice_nums": 9,
    "mm_use_im_start_end": True, "model_type": "minicpmv", "num_attention_heads": 36,
    "num_hidden_layers": 40, "num_key_value_heads": 36, "patch_size": 14, "pretraining_tp": 1,
    "query_num": 64, "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 10000.0,
    "scale_depth": 1.4, "scale_emb": 12, "scale_resolution": 448, "slice_mode": True,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.36.0",
    "use_cache": True, "vision_encoder": "vit_so400m_patch14_siglip_384.webli", "vocab_size": 122753,
}

TINY_OVERRIDES: dict = {
    "hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
    "intermediate_size": 256, "vocab_size": 1024, "dim_model_base": 32, "max_position_embeddings": 2048,
    # timm keyword arguments: a 3-block (2 after the dropped last one), 64-wide SigLIP; the 27x27
    # position table of the real tower is kept, so the resize trap is exercised
    "vision_config": {"embed_dim": 64, "depth": 3, "num_heads": 2, "mlp_ratio": 2.0},
}

GENERATION_CONFIG = {"_from_model_config": True, "bos_token_id": 1, "eos_token_id": 2,
                     "transformers_version": "4.36.0"}

SIZES = ("tiny", "full")


def synthetic_config(size: str, seed: int) -> dict:
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r} (expected one of {', '.join(SIZES)})")
    cfg = dict(REAL_CONFIG)
    if size == "tiny":
        cfg.update(TINY_OVERRIDES)
    cfg["_name_or_path"] = f"ovexport/synthetic-minicpm-v-2-{size}"
    cfg["ovexport_synthetic"] = {"size": size, "seed": seed}
    return cfg


def _meta_shapes(config: MiniCPMV2Config) -> dict[str, tuple[int, ...]]:
    from .model import MiniCPMV2
    with torch.device("meta"):
        model = MiniCPMV2(config)
    return tensor_shapes(model)


def _init(name: str, shape: tuple[int, ...], seed: int, config: MiniCPMV2Config) -> torch.Tensor:
    """A deterministic random tensor per (seed, name), shaped to keep activations in a sane range."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))

    def normal(std: float) -> torch.Tensor:
        return torch.randn(shape, generator=g) * std

    leaf = name.rsplit(".", 1)[-1]
    if "norm" in name or name.startswith("resampler.ln_"):
        if leaf == "weight":                      # RMSNorm / LayerNorm gains far from 1
            return 1.0 + normal(0.25)
        return normal(0.1)                        # LayerNorm biases far from 0
    if leaf == "bias":
        return normal(0.05)
    if name == "llm.model.embed_tokens.weight":
        return normal(0.1)                        # x scale_emb (12) in the model: ~1.2 rms
    if name == "llm.lm_head.weight":
        return normal(20.0 / math.sqrt(shape[1]))  # logits with clear winners, so greedy is meaningful
    if name == "vpm.pos_embed":
        return normal(0.5)
    if name in ("resampler.query", "resampler.pos_embed"):
        return normal(1.0)
    if name == "resampler.proj":
        return normal(shape[0] ** -0.5)
    fan_in = math.prod(shape[1:]) if len(shape) > 1 else shape[0]
    return normal(1.0 / math.sqrt(fan_in))


def write_synthetic_checkpoint(out: Path, size: str = "tiny", seed: int = 0,
                               progress: Callable[[int, int], None] | None = None,
                               max_shard_bytes: int = 4 * 1024 ** 3) -> Path:
    """Write a synthetic checkpoint into ``out`` (created). ``progress(done_params, total_params)``."""
    cfg_dict = synthetic_config(size, seed)
    config = MiniCPMV2Config.from_dict(cfg_dict)
    dtype = torch.float32 if size == "tiny" else torch.bfloat16
    return write_checkpoint(out, cfg_dict, lambda name, shape: _init(name, shape, seed, config), dtype,
                            seed=seed, progress=progress, max_shard_bytes=max_shard_bytes)


def write_checkpoint(out: Path, cfg_dict: dict, make: Callable[[str, tuple[int, ...]], torch.Tensor],
                     dtype: torch.dtype, seed: int = 0, tokenizer_words: tuple[str, ...] = (),
                     progress: Callable[[int, int], None] | None = None,
                     max_shard_bytes: int = 4 * 1024 ** 3) -> Path:
    """The openbmb layout: sharded safetensors + index, config.json, generation_config.json and the
    tokenizer files. ``make(name, shape)`` gives each tensor (random or trained)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg_dict = dict(cfg_dict)
    config = MiniCPMV2Config.from_dict(cfg_dict)
    shapes = _meta_shapes(config)
    names = sorted(shapes)                        # the real index is sorted by name, too

    shards: list[list[str]] = [[]]
    used = 0
    for n in names:
        size_b = nbytes(shapes[n], dtype)
        if shards[-1] and used + size_b > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(n)
        used += size_b
    total_params = sum(math.prod(s) for s in shapes.values())
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total_params)

    weight_map: dict[str, str] = {}
    total_bytes = 0
    for i, shard_names in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        total_bytes += write_shard(out / fname, [(n, shapes[n]) for n in shard_names], dtype, make, on_tensor=tick)
        weight_map.update({n: fname for n in shard_names})
    (out / INDEX).write_text(json.dumps({"metadata": {"total_size": total_bytes}, "weight_map": weight_map}, indent=2))
    if dtype == torch.float32:
        cfg_dict["torch_dtype"] = "float32"
    (out / "config.json").write_text(json.dumps(cfg_dict, indent=2, ensure_ascii=False))
    (out / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2))
    from .synth_tokenizer import write_tokenizer
    write_tokenizer(out, vocab_size=config.vocab_size, seed=seed, words=tokenizer_words)
    return out
