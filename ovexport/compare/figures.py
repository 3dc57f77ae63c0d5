"""The compare figures of one bundle, for its manifest and model card: found by the fingerprint of the
``compress`` step that made its IRs, in any ``<output.root>/compare/*/compare.json``."""
from __future__ import annotations

import json
from pathlib import Path

KEYS = ("kl_mean", "kl_p99", "kl_max", "top1_agreement", "ppl_ratio", "exact_match", "rougeL", "task_accuracy",
        "llm_mb", "ttft_ms", "decode_tok_s")


def figures_for(output_root: Path, compress_fingerprint: str | None) -> dict | None:
    """The newest compare row of this compressed IR (with the eval set, the reference and its rank), or None."""
    if not compress_fingerprint:
        return None
    found = []
    for f in Path(output_root).glob("compare/*/compare.json"):
        try:
            res = json.loads(f.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        names = {v.get("name") for v in res.get("variants", []) if v.get("compress_fingerprint") == compress_fingerprint}
        rows = [r for r in res.get("rows", []) if r.get("name") in names]
        if rows:
            found.append((f.stat().st_mtime, res, rows[0]))
    if not found:
        return None
    _, res, row = max(found, key=lambda t: t[0])
    ranked = [r["label"] for r in res["rows"] if not r.get("is_reference")]
    out = {"eval set": f"{res['evalset']['name']} ({res['evalset']['items']} questions)",
           "reference": res["reference"]["kind"], "rank by KL": f"{ranked.index(row['label']) + 1} of {len(ranked)}"}
    out.update({k: row[k] for k in KEYS if row.get(k) is not None})
    if res.get("random_weights"):
        out["note"] = "random weights: accuracy figures are noise"
    return out
