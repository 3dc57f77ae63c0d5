"""Weight compression of one IR with ``nncf.compress_weights``.

The recipe layer (``PartCompression.nncf_kwargs``) decides which keywords apply; this module only
turns their plain values into NNCF's enums and calls NNCF.
"""
from __future__ import annotations

from typing import Any

_ENUMS = {"mode": "CompressWeightsMode", "backup_mode": "BackupMode", "sensitivity_metric": "SensitivityMetric"}


def to_nncf(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Plain recipe values -> ``nncf.compress_weights`` keywords (enums, IgnoredScope)."""
    import nncf

    out = dict(kwargs)
    for key, enum in _ENUMS.items():
        if out.get(key) is not None:
            out[key] = getattr(nncf, enum)(out[key])
        else:
            out.pop(key, None)
    if "ignored_scope" in out:
        out["ignored_scope"] = nncf.IgnoredScope(**out["ignored_scope"], validate=False)
    return out


def compress_model(ov_model, policy: Any, dataset=None):
    """Compress in place (NNCF returns the same model object) and return it.

    ``policy`` is a recipe ``PartCompression`` or a dict of its fields.
    """
    import nncf

    if isinstance(policy, dict):
        from ovexport.recipe.schema import PartCompression
        policy = PartCompression.model_validate(policy)
    kwargs = to_nncf(policy.nncf_kwargs())
    if dataset is not None:
        kwargs["dataset"] = dataset
    return nncf.compress_weights(ov_model, **kwargs)
