"""An image encoder made of one or more IRs, behind one call: N same-size images -> their features.

A family whose ``ir_layout`` splits its ``image_encoder`` part into several IRs supplies its own encoder
(``ModelFamily.image_encoder``); otherwise the part is one IR taking ``pixel_values`` and the patch grid
``tgt_size``. The runtime, the validators and calibration all encode images through :func:`image_encoder_for`, so
they feed the IRs what the bundle's other runtimes feed them. ``record(xml, inputs)``, when given, sees the inputs
of every IR call (per-IR calibration data).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ovexport.bundle.layout import IMAGE_ENCODER

Infer = Callable[[str, Mapping[str, np.ndarray]], np.ndarray]   # (IR .xml name, inputs) -> first output (a copy)
Record = Callable[[str, dict[str, np.ndarray]], None]


class FusedImageEncoder:
    """One IR: ``pixel_values`` [N, 3, H, W] + ``tgt_size`` [2] -> [N, Q, D]."""

    def __init__(self, infer: Infer, record: Record | None = None):
        self.infer, self.record = infer, record

    def encode(self, pixel_values: np.ndarray, tgt_size: Sequence[int]) -> np.ndarray:
        inputs = {"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32),
                  "tgt_size": np.asarray(tgt_size, dtype=np.int64)}
        if self.record is not None:
            self.record(IMAGE_ENCODER, inputs)
        return self.infer(IMAGE_ENCODER, inputs)


def image_encoder_for(family, config, infer: Infer, record: Record | None = None):
    """The family's image encoder over ``infer`` (``config``: the model's config, as its adapter reads it)."""
    make = getattr(family, "image_encoder", None)
    return make(config, infer, record) if make is not None else FusedImageEncoder(infer, record)


def requests_infer(requests: Mapping[str, object]) -> Infer:
    """``infer`` over infer requests keyed by IR file name (outputs copied: requests reuse their buffers)."""
    def infer(xml: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        req = requests[xml]
        req.infer(dict(inputs), share_inputs=True)
        return req.get_output_tensor(0).data.copy()
    return infer
