"""An image encoder made of one or more IRs, behind one call: the inputs of one ``ImageBatch`` (what the family's
``RuntimeAdapter.encoder_inputs`` makes of the image pieces) -> their features ``[N, Q, D]``.

A family whose ``ir_layout`` splits its ``image_encoder`` part into several IRs supplies its own encoder
(``ModelFamily.image_encoder``); otherwise the part is one IR fed the batch's inputs as they are. The runtime, the
validators, calibration and the cost model all encode images through :func:`image_encoder_for`, so they feed the
IRs what the bundle's other runtimes feed them. ``record(xml, inputs)``, when given, sees the inputs of every IR
call (per-IR calibration data).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ovexport.parts import ir_files_of

Infer = Callable[[str, Mapping[str, np.ndarray]], np.ndarray]   # (IR .xml name, inputs) -> first output (a copy)
Record = Callable[[str, dict[str, np.ndarray]], None]


class SingleIRImageEncoder:
    """The image encoder part as one IR: ``encode(inputs)`` runs it on the batch's inputs."""

    def __init__(self, xml: str, infer: Infer, record: Record | None = None):
        self.xml, self.infer, self.record = xml, infer, record

    def encode(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        inputs = {k: np.ascontiguousarray(v) for k, v in inputs.items()}
        if self.record is not None:
            self.record(self.xml, inputs)
        return self.infer(self.xml, inputs)


def image_encoder_for(family, config, infer: Infer, record: Record | None = None):
    """The family's image encoder over ``infer`` (``config``: the model's config, as its adapter reads it)."""
    make = getattr(family, "image_encoder", None)
    if make is not None:
        return make(config, infer, record)
    return SingleIRImageEncoder(ir_files_of(family, "image_encoder")[0], infer, record)


def requests_infer(requests: Mapping[str, object]) -> Infer:
    """``infer`` over infer requests keyed by IR file name (outputs copied: requests reuse their buffers)."""
    def infer(xml: str, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        req = requests[xml]
        req.infer(dict(inputs), share_inputs=True)
        return req.get_output_tensor(0).data.copy()
    return infer
