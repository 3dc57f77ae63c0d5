"""MiniCPM-V-2 configuration, parsed from the real checkpoint's ``config.json`` keys."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ovexport.errors import CheckpointError

# keys of the real config.json that the model needs; everything else is kept in ``extra``
_REQUIRED = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size",
    "rms_norm_eps", "scale_emb", "scale_depth", "dim_model_base", "query_num", "vision_encoder",
)


@dataclass(frozen=True)
class MiniCPMV2Config:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    scale_emb: float
    scale_depth: float
    dim_model_base: int
    query_num: int
    patch_size: int
    scale_resolution: int
    max_slice_nums: int
    slice_mode: bool
    drop_vision_last_layer: bool
    vision_encoder: str
    # keyword arguments for timm.create_model that shrink the tower (synthetic tiny checkpoints only)
    vision_config: dict[str, Any] = field(default_factory=dict)
    bos_token_id: int = 1
    eos_token_id: int = 2
    torch_dtype: str = "bfloat16"
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def residual_scale(self) -> float:
        """Scale of every residual branch: ``scale_depth / sqrt(num_hidden_layers)``."""
        return self.scale_depth / self.num_hidden_layers ** 0.5

    @property
    def logit_scale(self) -> float:
        """Hidden states are divided by this before ``lm_head``: ``hidden_size / dim_model_base``."""
        return self.hidden_size / self.dim_model_base

    @property
    def resampler_heads(self) -> int:
        return self.hidden_size // 128

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "config.json") -> "MiniCPMV2Config":
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise CheckpointError(f"{where} lacks {', '.join(missing)}",
                                  fix="point the recipe's source at a MiniCPM-V-2 checkpoint")
        return cls(
            hidden_size=int(d["hidden_size"]),
            num_hidden_layers=int(d["num_hidden_layers"]),
            num_attention_heads=int(d["num_attention_heads"]),
            num_key_value_heads=int(d.get("num_key_value_heads", d["num_attention_heads"])),
            intermediate_size=int(d["intermediate_size"]),
            vocab_size=int(d["vocab_size"]),
            rms_norm_eps=float(d["rms_norm_eps"]),
            rope_theta=float(d.get("rope_theta", 10000.0)),
            max_position_embeddings=int(d.get("max_position_embeddings", 4096)),
            scale_emb=float(d["scale_emb"]),
            scale_depth=float(d["scale_depth"]),
            dim_model_base=int(d["dim_model_base"]),
            query_num=int(d["query_num"]),
            patch_size=int(d.get("patch_size", 14)),
            scale_resolution=int(d.get("scale_resolution", 448)),
            max_slice_nums=int(d.get("max_slice_nums", 9)),
            slice_mode=bool(d.get("slice_mode", True)),
            drop_vision_last_layer=bool(d.get("drop_vision_last_layer", True)),
            vision_encoder=str(d["vision_encoder"]),
            vision_config=dict(d.get("vision_config") or {}),
            bos_token_id=int(d.get("bos_token_id", 1)),
            eos_token_id=int(d.get("eos_token_id", 2)),
            torch_dtype=str(d.get("torch_dtype", "bfloat16")),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        )

    @classmethod
    def from_dir(cls, path: str | Path) -> "MiniCPMV2Config":
        f = Path(path) / "config.json"
        if not f.is_file():
            raise CheckpointError(f"{f} is missing", fix="point the recipe's source at a complete checkpoint directory")
        try:
            d = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise CheckpointError(f"{f}: not valid JSON ({e.msg} at line {e.lineno})",
                                  fix="re-download the checkpoint") from None
        return cls.from_dict(d, where=str(f))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
