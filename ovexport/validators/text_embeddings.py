"""Text embeddings IR vs PyTorch: a table lookup, so the fp32 export must match exactly.

Inputs: edge ids (0, the tokenizer's unk/BOS/EOS/pad, every id it lists in ``special_ids``, vocab_size - 1, taken
from the reference's tokenizer and config) and random ids, as one sequence [1, N] and as a batch [2, M].
Metric: ``max_abs_diff`` (gate: ``thresholds.text_embeddings.max_abs_diff``).
"""
from __future__ import annotations

import numpy as np

from ovexport.parts import part

from .base import CheckResult, gate, max_abs_diff
from .context import ValidationContext

NAME = "text_embeddings"
PART = "text_embeddings"
IR = part(PART)
N_RANDOM = 64
SPECIAL_ATTRS = ("unk_id", "bos_id", "eos_id", "pad_id")


def _special_name(tok, i: int) -> str:
    """The piece of special id ``i`` when the tokenizer can say (``id_to_piece``), else ``special_<i>``."""
    piece = getattr(tok, "id_to_piece", None)
    try:
        name = piece(i) if piece is not None else None
    except Exception:  # noqa: BLE001 - a name is only a label in the report
        name = None
    return name if isinstance(name, str) and name else f"special_{i}"


def edge_ids(reference) -> dict[str, int]:
    """name -> id of the ids where an off-by-one or a wrong table would show first: 0, the tokenizer's named
    specials, every other id of its ``special_ids`` (the model's own markup: image tags and the like, whatever the
    family calls them) and the last id of the vocabulary."""
    tok = reference.tokenizer
    vocab = int(reference.config.vocab_size)
    out = {"zero": 0}
    for attr in SPECIAL_ATTRS:
        v = getattr(tok, attr, None)
        if isinstance(v, (int, np.integer)) and 0 <= int(v) < vocab:
            out[attr.removesuffix("_id")] = int(v)
    for i in sorted(int(i) for i in getattr(tok, "special_ids", ()) or ()):
        if 0 <= i < vocab and i not in out.values():
            name = _special_name(tok, i)
            out[name if name not in out else f"special_{i}"] = i
    out["last"] = vocab - 1
    return out


def run(ctx: ValidationContext) -> CheckResult:
    rng = ctx.rng_for(NAME)
    thr = ctx.spec.thresholds.text_embeddings
    ref = ctx.reference                     # config and tokenizer only: weights load in compute()
    vocab = int(ref.config.vocab_size)
    edges = edge_ids(ref)
    seq = np.concatenate([np.array(list(edges.values()), np.int64),
                          rng.integers(0, vocab, size=N_RANDOM, dtype=np.int64)])[None]
    batch = rng.integers(0, vocab, size=(2, 16), dtype=np.int64)
    batch[:, 0] = [edges["zero"], edges["last"]]

    def compute() -> dict:
        with ctx.torch_part(IR.reference_part) as ref:
            return {"seq": ref.text_embeddings(seq), "batch": ref.text_embeddings(batch)}

    out = ctx.cached_reference(NAME, compute)
    ref_seq, ref_batch = out["seq"], out["batch"]

    with ctx.compiled(IR.ir_file) as model:
        req = model.create_infer_request()
        ov_seq = req.infer({"input_ids": seq})[0].copy()
        ov_batch = req.infer({"input_ids": batch})[0].copy()
        del req

    d_seq = max_abs_diff(ref_seq, ov_seq)
    d_batch = max_abs_diff(ref_batch, ov_batch)
    n_edge = len(edges)
    per_id = np.abs(np.asarray(ref_seq, np.float64) - np.asarray(ov_seq, np.float64)).max(-1)[0] \
        if ref_seq.shape == ov_seq.shape else None
    edge_diffs = ({name: float(per_id[i]) for i, name in enumerate(edges)} if per_id is not None else {})
    worst = max(d_seq, d_batch)
    metrics = {"max_abs_diff": worst}
    details = {
        "edge_ids": edges,
        "edge_max_abs_diff": edge_diffs,
        "sequence": {"shape": list(seq.shape), "max_abs_diff": d_seq, "random_ids": N_RANDOM},
        "batch": {"shape": list(batch.shape), "max_abs_diff": d_batch},
        "ref_abs_max": float(np.abs(ref_seq).max()),
        "mismatching_ids": int((per_id > 0).sum()) if per_id is not None else None,
        "compared_ids": n_edge + N_RANDOM + batch.size,
    }
    return CheckResult.build(NAME, PART, metrics, [gate("max_abs_diff", worst, thr.max_abs_diff, "max")], details)
