"""What an IR's weights are stored as: the int4 / int8 / float bit-width distribution, as NNCF reports it.

A weight is a Constant of rank >= 2 that feeds (through a Convert) the first input of a decompression
Subtract/Multiply (NNCF's pattern), or directly a MatMul / Gather / Convolution. Zero points and scales
(second inputs) are not weights. LoRA-correction adapters NNCF adds (``<layer>_lora_A`` / ``_lora_B``) are
counted apart: NNCF's table does not list them.

NNCF's "Statistics of the bitwidth distribution" table has two columns: "% all parameters (layers)" over
every weight, and "% ratio-defining parameters (layers)" over the weights ``ratio`` applies to. For int4
modes those are the MatMul weights except the last one (the lm_head backup layer) unless ``all_layers``,
plus the embeddings with ``all_layers``, minus the ignored scope; for int8 modes, every compressed weight.
``ratio_defining_layers`` re-derives that set from the compressed IR and the part's policy, so the table can
be recomputed from any IR (``ovexport inspect``, ``ir_report.py``).
"""
from __future__ import annotations

import re
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any

_INT4 = {"u4", "i4", "nf4"}
_INT8 = {"u8", "i8"}
_WEIGHT_USERS = {"MatMul", "Gather", "Convolution"}
# ops between a weight constant and its layer: NNCF's decompression subgraph (and fp16 -> f32 Converts)
_DECOMPRESSION = {"Convert", "Subtract", "Multiply", "Reshape", "Transpose", "Unsqueeze", "Squeeze"}
KINDS = ("int4", "int8", "float")
_LORA_RE = re.compile(r"_lora_[AB]$")


@dataclass(frozen=True)
class WeightInfo:
    name: str       # the weight constant's friendly name
    layer: str      # the MatMul / Gather / Convolution it feeds (NNCF's node name)
    op: str         # "MatMul" | "Gather" | "Convolution"
    kind: str       # "int4" | "int8" | "float"
    params: int
    order: int      # topological position of the layer
    adapter: bool = False   # NNCF LoRA-correction adapter

    def to_json(self) -> dict:
        return asdict(self)


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


def _layer_of(const):
    """The MatMul / Gather / Convolution a weight constant ends up in (through its decompression ops)."""
    queue = deque([(const, 0)])
    seen = set()
    while queue:
        node, depth = queue.popleft()
        for nxt, _ in _consumers(node.output(0)):
            kind = nxt.get_type_name()
            if kind in _WEIGHT_USERS:
                return nxt
            key = nxt.get_friendly_name()
            if kind in _DECOMPRESSION and depth < 8 and key not in seen:
                seen.add(key)
                queue.append((nxt, depth + 1))
    return None


def weight_layers(ov_model) -> list[WeightInfo]:
    """Every weight of the IR, in topological order of the layer it feeds."""
    ops = ov_model.get_ordered_ops()
    position = {op.get_friendly_name(): i for i, op in enumerate(ops)}
    out = []
    for op in ops:
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
        layer = _layer_of(op)
        lname = layer.get_friendly_name() if layer is not None else op.get_friendly_name()
        name = op.get_friendly_name()
        out.append(WeightInfo(name=name, layer=lname, op=layer.get_type_name() if layer is not None else "?",
                              kind=kind, params=n, order=position.get(lname, position[name]),
                              adapter=bool(_LORA_RE.search(name))))
    out.sort(key=lambda w: (w.order, w.name))
    return out


def count_weights(layers: list[WeightInfo]) -> dict[str, dict[str, int]]:
    stats = {k: {"layers": 0, "params": 0} for k in KINDS}
    for w in layers:
        stats[w.kind]["layers"] += 1
        stats[w.kind]["params"] += w.params
    return stats


def weight_bit_stats(ov_model_or_layers) -> dict[str, dict[str, int]]:
    """{"int4": {"layers": n, "params": p}, "int8": {...}, "float": {...}} over the weights of rank >= 2
    (LoRA adapters excluded, as in NNCF's table). Accepts an ``ov.Model`` or ``weight_layers(model)``."""
    layers = ov_model_or_layers if isinstance(ov_model_or_layers, list) else weight_layers(ov_model_or_layers)
    return count_weights([w for w in layers if not w.adapter])


def adapter_stats(layers: list[WeightInfo]) -> dict[str, int] | None:
    """Layers and parameters of NNCF LoRA-correction adapters, None when there are none."""
    ad = [w for w in layers if w.adapter]
    return {"layers": len(ad), "params": sum(w.params for w in ad)} if ad else None


# ------------------------------------------------------------------------------------- ratio-defining


def _field(policy: Any, name: str, default=None):
    if isinstance(policy, dict):
        return policy.get(name, default)
    return getattr(policy, name, default)


def _scope(policy: Any) -> dict[str, list[str]]:
    scope = _field(policy, "ignored_scope") or {}
    if not isinstance(scope, dict):
        scope = scope.model_dump() if hasattr(scope, "model_dump") else dict(scope)
    return {k: list(scope.get(k) or []) for k in ("names", "patterns", "types")}


def in_ignored_scope(w: WeightInfo, scope: dict[str, list[str]]) -> bool:
    """NNCF's matching: exact names (layer or weight), ``re.match`` patterns over layer names, op types."""
    if w.layer in scope["names"] or w.name in scope["names"]:
        return True
    if any(re.match(p, w.layer) for p in scope["patterns"]):
        return True
    return w.op in scope["types"]


def infer_policy(layers: list[WeightInfo]) -> dict | None:
    """A policy guessed from an IR alone (no compression.json): int4 if any int4 weight, all_layers if the last
    MatMul or an embedding is int4; None when nothing is compressed."""
    real = [w for w in layers if not w.adapter]
    kinds = {w.kind for w in real}
    if kinds <= {"float"}:
        return None
    if "int4" not in kinds:
        return {"mode": "int8_asym"}
    mms = [w for w in real if w.op == "MatMul"]
    all_layers = bool(mms and mms[-1].kind == "int4") or any(w.op == "Gather" and w.kind == "int4" for w in real)
    return {"mode": "int4_sym", "all_layers": all_layers, "backup_mode": "int8_asym"}


def ratio_defining_layers(layers: list[WeightInfo], policy: Any) -> list[WeightInfo] | None:
    """The weights NNCF's ``ratio`` applies to (its table's right column); None when ``policy`` is None."""
    if policy is None:
        return None
    real = [w for w in layers if not w.adapter]
    mode = str(_field(policy, "mode", ""))
    if mode.startswith("int8"):
        return [w for w in real if w.kind != "float"]   # float = ignored scope
    backup = str(_field(policy, "backup_mode", "int8_asym") or "int8_asym")
    scope = _scope(policy)
    if backup == "none":   # float = ignored or backup: tell them apart with the ignored scope
        skipped = {w.name for w in real if w.kind == "float" and in_ignored_scope(w, scope)}
    else:
        skipped = {w.name for w in real if w.kind == "float"}
    last_skipped = bool(real) and real[-1].name in skipped
    chosen = [w for w in real if w.op == "MatMul" and w.name not in skipped]
    all_layers = bool(_field(policy, "all_layers", False))
    if not all_layers and not last_skipped:
        chosen = chosen[:-1]
    if all_layers:
        chosen += [w for w in real if w.op == "Gather" and w.name not in skipped]
    return chosen


def bit_distribution(stats: dict[str, dict[str, int]],
                     ratio_stats: dict[str, dict[str, int]] | None = None) -> dict[str, dict[str, float]]:
    """Percentages of parameters and layers per bit width (NNCF's table, recomputed); with ``ratio_stats``
    also the ratio-defining columns."""
    def pct(part: int, whole: int) -> float:
        return round(100 * part / whole, 2) if whole else 0.0

    tp = sum(v["params"] for v in stats.values())
    tl = sum(v["layers"] for v in stats.values())
    out: dict[str, dict[str, float]] = {}
    for k, v in stats.items():
        row = {"params_pct": pct(v["params"], tp), "layers_pct": pct(v["layers"], tl)}
        if ratio_stats is not None:
            r = ratio_stats.get(k, {"params": 0, "layers": 0})
            row["ratio_defining_params_pct"] = pct(r["params"], sum(x["params"] for x in ratio_stats.values()))
            row["ratio_defining_layers_pct"] = pct(r["layers"], sum(x["layers"] for x in ratio_stats.values()))
        out[k] = row
    return out


def compression_report(ov_model, policy: Any = None) -> dict[str, Any]:
    """What compression.json records of one IR: weights (all layers), ratio-defining weights, percentages."""
    layers = weight_layers(ov_model)
    stats = weight_bit_stats(layers)
    ratio = ratio_defining_layers(layers, policy)
    ratio_stats = count_weights(ratio) if ratio is not None else None
    report: dict[str, Any] = {"weights": stats, "ratio_defining": ratio_stats,
                              "distribution": bit_distribution(stats, ratio_stats)}
    adapters = adapter_stats(layers)
    if adapters:
        report["lora_adapters"] = adapters
    return report


def merged_report(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One compression.json entry for a part held in several IRs (``{xml: compression_report(...)}``): the
    counts added up, each IR's own entry under ``irs``. A part in one IR: that IR's entry."""
    if len(reports) == 1:
        return dict(next(iter(reports.values())))
    def total(key: str) -> dict[str, dict[str, int]] | None:
        parts = [r[key] for r in reports.values() if r.get(key) is not None]
        if not parts:
            return None
        return {k: {f: sum(p.get(k, {}).get(f, 0) for p in parts) for f in ("layers", "params")} for k in KINDS}

    weights, ratio = total("weights"), total("ratio_defining")
    first = next(iter(reports.values()))
    out: dict[str, Any] = {"policy": first.get("policy"), "weights": weights, "ratio_defining": ratio,
                           "distribution": bit_distribution(weights, ratio), "irs": reports}
    adapters = [r["lora_adapters"] for r in reports.values() if r.get("lora_adapters")]
    if adapters:
        out["lora_adapters"] = {k: sum(a[k] for a in adapters) for k in ("layers", "params")}
    return out


def format_table(stats: dict[str, dict[str, int]],
                 ratio_stats: dict[str, dict[str, int]] | None = None) -> list[list[str]]:
    """Rows like NNCF's table: [bit width, "54% (158 / 281)", "55% (7 / 14)"], widest bit width first (float,
    int8, int4, as NNCF sorts them), bit widths without weights left out."""
    tp = sum(v["params"] for v in stats.values())
    tl = sum(v["layers"] for v in stats.values())
    rows = []
    for k in reversed(KINDS):
        v = stats[k]
        if not v["layers"]:
            continue
        row = [k, f"{100 * v['params'] / max(tp, 1):.0f}% ({v['layers']} / {tl})"]
        if ratio_stats is not None:
            r = ratio_stats.get(k, {"params": 0, "layers": 0})
            rp = sum(x["params"] for x in ratio_stats.values())
            rl = sum(x["layers"] for x in ratio_stats.values())
            row.append(f"{100 * r['params'] / max(rp, 1):.0f}% ({r['layers']} / {rl})")
        rows.append(row)
    return rows
