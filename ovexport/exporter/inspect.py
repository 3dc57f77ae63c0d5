"""What an IR's weights are stored as: the int4 / int8 / float bit-width distribution.

A weight is a Constant that feeds (through a Convert) the first input of a decompression
Subtract/Multiply (NNCF's pattern), or directly a MatMul / Gather / Convolution. Zero points and
scales (second inputs) are not weights.
"""
from __future__ import annotations

from collections import Counter

_INT4 = {"u4", "i4", "nf4"}
_INT8 = {"u8", "i8"}
_WEIGHT_USERS = {"MatMul", "Gather", "Convolution"}


def _consumers(output):
    return [(inp.get_node(), inp.get_index()) for inp in output.get_target_inputs()]


def _is_weight(const) -> bool:
    for node, idx in _consumers(const.output(0)):
        kind = node.get_type_name()
        if kind == "Convert":
            for nxt, nidx in _consumers(node.output(0)):
                k2 = nxt.get_type_name()
                if (k2 in ("Subtract", "Multiply") and nidx == 0) or (k2 in _WEIGHT_USERS):
                    return True
        elif kind in _WEIGHT_USERS and (idx == 1 or kind == "Gather" and idx == 0):
            return True
    return False


def weight_bit_stats(ov_model) -> dict[str, dict[str, int]]:
    """{"int4": {"layers": n, "params": p}, "int8": {...}, "float": {...}} over weight constants of rank >= 2."""
    layers: Counter[str] = Counter()
    params: Counter[str] = Counter()
    for op in ov_model.get_ops():
        if op.get_type_name() != "Constant":
            continue
        shape = list(op.get_output_shape(0))
        if len(shape) < 2 or not _is_weight(op):
            continue
        et = op.get_output_element_type(0).get_type_name()
        kind = "int4" if et in _INT4 else "int8" if et in _INT8 else "float"
        n = 1
        for s in shape:
            n *= s
        layers[kind] += 1
        params[kind] += n
    return {k: {"layers": layers[k], "params": params[k]} for k in ("int4", "int8", "float")}


def bit_distribution(stats: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Percentages of parameters and layers per bit width (NNCF's own table, recomputed)."""
    tp = sum(v["params"] for v in stats.values()) or 1
    tl = sum(v["layers"] for v in stats.values()) or 1
    return {k: {"params_pct": round(100 * v["params"] / tp, 2), "layers_pct": round(100 * v["layers"] / tl, 2)}
            for k, v in stats.items()}
