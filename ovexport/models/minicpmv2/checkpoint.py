"""Reading the openbmb checkpoint layout: sharded safetensors + index, by the real tensor names."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from ovexport.errors import CheckpointError
from ovexport.util.mapped_safetensors import MappedSafetensors

INDEX = "model.safetensors.index.json"


def weight_map(ckpt: Path) -> dict[str, str]:
    """tensor name -> shard file name (a single ``model.safetensors`` is accepted too)."""
    ckpt = Path(ckpt)
    index = ckpt / INDEX
    if index.is_file():
        try:
            return dict(json.loads(index.read_text())["weight_map"])
        except (json.JSONDecodeError, KeyError) as e:
            raise CheckpointError(f"{index} is not a safetensors index ({e})", fix="re-download the checkpoint") from None
    single = ckpt / "model.safetensors"
    if single.is_file():
        from safetensors import safe_open
        with safe_open(single, framework="pt") as f:
            return {k: single.name for k in f.keys()}
    raise CheckpointError(f"no {INDEX} or model.safetensors in {ckpt}",
                          fix="point the recipe's source at a complete checkpoint directory")


def load_tensors(ckpt: Path, module: nn.Module, prefix: str, dtype: torch.dtype,
                 mapped: bool = False) -> list[MappedSafetensors]:
    """Fill ``module`` (built on the meta device) with the tensors named ``prefix + <its state-dict key>``.

    Tensors are read one shard at a time and converted to ``dtype`` one by one, so peak memory is
    the module's size plus one tensor. A missing tensor or a wrong shape is a CheckpointError.
    ``mapped``: a tensor stored in ``dtype`` is a read-only view of its shard instead of a copy
    (``util.mapped_safetensors``); the shards that gave views are returned, to release their pages.
    """
    from safetensors import safe_open

    ckpt = Path(ckpt)
    wmap = weight_map(ckpt)
    expected = {prefix + k: v for k, v in module.state_dict(keep_vars=True).items()}
    missing = [k for k in expected if k not in wmap]
    if missing:
        more = f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""
        raise CheckpointError(f"checkpoint {ckpt} lacks tensor {', '.join(missing[:3])}{more}",
                              fix="the checkpoint is incomplete or not MiniCPM-V-2: re-download it")
    by_shard: dict[str, list[str]] = {}
    for k in expected:
        by_shard.setdefault(wmap[k], []).append(k)
    loaded: dict[str, torch.Tensor] = {}
    views: list[MappedSafetensors] = []
    for shard, names in by_shard.items():
        path = ckpt / shard
        if not path.is_file():
            raise CheckpointError(f"shard {path} is missing", fix="re-download the checkpoint")
        with safe_open(path, framework="pt") as f:
            for name in names:
                shape = tuple(f.get_slice(name).get_shape())
                want = tuple(expected[name].shape)
                if shape != want:
                    raise CheckpointError(
                        f"tensor {name} in {shard} has shape {shape}, expected {want} for this config.json",
                        fix="the weights do not match config.json: re-download the checkpoint")
        shard_map = MappedSafetensors(path) if mapped else None
        for name in names:
            view = shard_map.tensor(name) if shard_map is not None else None
            if view is not None and view.dtype == dtype:
                loaded[name[len(prefix):]] = view
                continue
            # one mapping per tensor: the shard's pages leave the process's memory as soon as the
            # tensor is converted, instead of accumulating until the whole shard is read
            with safe_open(path, framework="pt") as f:
                loaded[name[len(prefix):]] = f.get_tensor(name).to(dtype, copy=True)
        if shard_map is not None and any(shard_map.holds(t) for t in loaded.values()):
            views.append(shard_map)
    module.load_state_dict(loaded, strict=True, assign=True)
    return views


def tensor_shapes(module: nn.Module, prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in module.state_dict(keep_vars=True).items()}


def iter_names(ckpt: Path) -> Iterable[str]:
    return weight_map(ckpt).keys()
