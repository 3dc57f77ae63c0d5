"""The compare figures of one bundle, for its published card: the row of a ``compare.json`` that scored the
bundle's very IRs (the same ``compress`` fingerprint). Not part of the bundle, whose build does not depend on
whether compare ran: ``ovexport publish --compare`` adds them."""
from __future__ import annotations

import json
from pathlib import Path

from ovexport.errors import InputError

KEYS = ("kl_mean", "kl_p99", "kl_max", "top1_agreement", "ppl_ratio", "exact_match", "rougeL", "task_accuracy",
        "llm_mb", "ttft_ms", "decode_tok_s")
RESULTS = "compare.json"


def read_results(path: Path | str) -> dict:
    """A compare's ``compare.json`` (``path`` is the file or the folder holding it)."""
    f = Path(path)
    f = f / RESULTS if f.is_dir() else f
    try:
        return json.loads(f.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read compare results {f} ({type(e).__name__})",
                         fix="pass the compare.json (or its folder) that `ovexport compare` wrote") from None


def figures_for(res: dict, compress_fingerprint: str | None) -> dict | None:
    """The compare row of this compressed IR in ``res`` (with the eval set, the reference and its rank), or None."""
    if not compress_fingerprint:
        return None
    names = {v.get("name") for v in res.get("variants", []) if v.get("compress_fingerprint") == compress_fingerprint}
    rows = [r for r in res.get("rows", []) if r.get("name") in names and not r.get("is_reference")]
    if not rows:
        return None
    row = rows[0]
    ranked = [r["label"] for r in res["rows"] if not r.get("is_reference")]
    out = {"eval set": f"{res['evalset']['name']} ({res['evalset']['items']} questions)",
           "reference": res["reference"]["kind"], "rank by KL": f"{ranked.index(row['label']) + 1} of {len(ranked)}"}
    out.update({k: row[k] for k in KEYS if row.get(k) is not None})
    if res.get("random_weights"):
        out["note"] = "random weights: accuracy figures are noise"
    return out
