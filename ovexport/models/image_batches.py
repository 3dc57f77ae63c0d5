"""The usual way a family batches its image pieces for the encoder: same-size pieces in one call, in order of
first appearance (the slices of a grid go through together)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .interface import ImageBatch


def same_size_batches(pixel_values: Sequence[np.ndarray],
                      inputs_of: Callable[[np.ndarray], Mapping[str, np.ndarray]]) -> list[ImageBatch]:
    """One ``ImageBatch`` per piece shape; ``inputs_of(stacked [N, ...])`` gives that call's IR inputs."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, px in enumerate(pixel_values):
        groups.setdefault(tuple(px.shape), []).append(i)
    return [ImageBatch(tuple(idx), inputs_of(np.stack([pixel_values[i] for i in idx]))) for idx in groups.values()]
