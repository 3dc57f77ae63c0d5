"""Arithmetic cost of one infer call of an IR: multiply-accumulates of its matrix products, counted from the graph.

``matmul_macs(model, shapes)`` reshapes a copy of the model to the given input shapes and sums, over every
``MatMul`` whose shapes are then static, batch x M x K x N, and over every ``ScaledDotProductAttention``,
the two products Q.K^T and P.V. Everything else (normalisations, activations, softmax) is left out: on a
transformer those are a few per cent of the work, so the count is a lower bound of the work an infer call
does, and ``2 * macs / seconds`` a lower bound of the arithmetic rate it ran at. Products whose shapes stay
dynamic after the reshape (e.g. attention over a state of unknown length) are counted apart in ``dynamic``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod
from pathlib import Path


@dataclass(frozen=True)
class Cost:
    macs: int           # multiply-accumulates of the products whose shapes are static
    products: int       # how many products were counted
    dynamic: int        # products left out because a shape stayed dynamic

    @property
    def gflop(self) -> float:
        return 2 * self.macs / 1e9


def _static(shape) -> list[int] | None:
    return [d.get_length() for d in shape] if shape.is_static else None


def _matmul_macs(node) -> int | None:
    a, b = (_static(node.input_value(i).get_partial_shape()) for i in range(2))
    if a is None or b is None:
        return None
    attrs = node.get_attributes()
    a = [1, *a] if len(a) == 1 else a
    b = [*b, 1] if len(b) == 1 else b
    m, k = (a[-1], a[-2]) if attrs.get("transpose_a") else (a[-2], a[-1])
    n = b[-2] if attrs.get("transpose_b") else b[-1]
    batch = max(prod(a[:-2]), prod(b[:-2]))
    return batch * m * k * n


def _sdpa_macs(node) -> int | None:
    q, k, v = (_static(node.input_value(i).get_partial_shape()) for i in range(3))
    if q is None or k is None or v is None:
        return None
    batch = prod(q[:-2])
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def matmul_macs(ov_model, shapes: Mapping[str, Sequence[int]]) -> Cost:
    """Multiply-accumulates of one infer call of ``ov_model`` (not modified) with inputs of ``shapes``
    (input name -> shape; inputs not named keep their shapes)."""
    import openvino as ov

    model = ov_model.clone()
    model.reshape({name: ov.PartialShape(list(s)) for name, s in shapes.items()})
    macs = counted = dynamic = 0
    for node in model.get_ordered_ops():
        kind = node.get_type_name()
        if kind == "MatMul":
            n = _matmul_macs(node)
        elif kind == "ScaledDotProductAttention":
            n = _sdpa_macs(node)
        else:
            continue
        if n is None:
            dynamic += 1
        else:
            macs += n
            counted += 1
    return Cost(macs=macs, products=counted, dynamic=dynamic)


def bench_case_costs(bundle: Path) -> dict[str, dict]:
    """Per ``ovexport bench`` case: the image-encoder calls (batch, H, W) and prompt tokens as the runtime builds
    them, and the GFLOP of the vision calls and of the language-model prefill (for the compute-floor benchmark)."""
    import openvino as ov

    import numpy as np

    from ovexport.bundle.layout import LANGUAGE_MODEL
    from ovexport.models import positions
    from ovexport.models.registry import family_for
    from ovexport.parts import ir_files_of

    from .bench_inputs import QUESTION, bench_cases, synthetic_image
    from .image_encoder import image_encoder_for
    from .ov_models import slice_last_logits

    family = family_for(bundle)
    adapter = family.runtime(bundle)
    core = ov.Core()
    image_irs = {xml: core.read_model(bundle / xml) for xml in ir_files_of(family, "image_encoder")}
    vision_macs: list[int] = []

    def count(xml: str, inputs) -> np.ndarray:
        """Counts a call's products instead of running it; returns zeros of the output's shape."""
        shapes = {k: list(np.shape(v)) for k, v in inputs.items()}
        vision_macs.append(matmul_macs(image_irs[xml], shapes).macs)
        model = image_irs[xml].clone()
        model.reshape({k: ov.PartialShape(s) for k, s in shapes.items()})
        return np.zeros(model.output(0).get_shape(), np.float32)

    encoder = image_encoder_for(family, adapter.config, count)
    lm_ir = core.read_model(bundle / LANGUAGE_MODEL)
    slice_last_logits(lm_ir)     # as the runtime does: logits of the last position only
    hidden = int(adapter.config.hidden_size)
    out = {}
    for name, (w, h) in bench_cases(family).items():
        prepared = adapter.prepare([{"role": "user", "content": QUESTION}], synthetic_image(w, h))
        batches = adapter.encoder_inputs(prepared)
        vision_macs.clear()
        for batch in batches:
            encoder.encode(batch.inputs)
        vision = 2 * sum(vision_macs) / 1e9
        t = int(len(prepared.input_ids))
        pos_shape = list(positions.batched(adapter.position_ids(prepared)).shape)
        prefill = matmul_macs(lm_ir, {"inputs_embeds": [1, t, hidden], "attention_mask": [1, t],
                                      "position_ids": pos_shape, "beam_idx": [1]}).gflop
        out[name] = {"encoder_calls": [[len(b.pieces), *prepared.pixel_values[b.pieces[0]].shape[-2:]]
                                       for b in batches], "prompt_tokens": t,
                     "vision_gflop": round(vision, 4), "prefill_gflop": round(prefill, 4)}
    return out
