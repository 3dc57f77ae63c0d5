"""How MiniCPM-V-2's prepared prompt becomes model inputs (its side of the runtime contract, shared by the runtime
adapter and the PyTorch reference): same-size pieces batched with their patch grid ``tgt_size``, each piece's
features written over its ``query_num`` placeholders (``image_bounds``), one row of positions ``0..T-1``."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ovexport.models.image_batches import same_size_batches
from ovexport.models.interface import ImageBatch
from ovexport.models.positions import sequential

from .prompt import MiniCPMPrepared


def tgt_size(pixel_values: np.ndarray, patch: int) -> np.ndarray:
    """The patch grid ``[ceil(H/p), ceil(W/p)]`` of ``[..., H, W]`` pixels (int64 [2])."""
    h, w = pixel_values.shape[-2:]
    return np.array([-(-h // patch), -(-w // patch)], dtype=np.int64)


def encoder_batch_inputs(pixel_values: np.ndarray, patch: int) -> dict[str, np.ndarray]:
    """One encoder call: ``pixel_values`` float32 [N, 3, H, W] and their ``tgt_size``."""
    px = np.ascontiguousarray(pixel_values, dtype=np.float32)
    return {"pixel_values": px, "tgt_size": tgt_size(px, patch)}


def encoder_inputs(prepared: MiniCPMPrepared, patch: int) -> list[ImageBatch]:
    return same_size_batches(prepared.pixel_values, lambda px: encoder_batch_inputs(px, patch))


def merge(prepared: MiniCPMPrepared, embeds: np.ndarray, features: Sequence[np.ndarray]) -> np.ndarray:
    for (s, e), f in zip(prepared.image_bounds, features):
        embeds[0, int(s):int(e)] = f
    return embeds


def position_ids(prepared: MiniCPMPrepared) -> np.ndarray:
    return sequential(len(prepared.input_ids))
