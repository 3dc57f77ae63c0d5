"""Compression of one IR with NNCF: weight compression (``nncf.compress_weights``) or, for ``int8_static``,
post-training quantization of weights and activations (``nncf.quantize``).

The recipe layer (``PartCompression.nncf_kwargs`` / ``quantize_kwargs``) decides which keywords apply; this
module only turns their plain values into NNCF's enums and calls NNCF.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

_ENUMS = {"mode": "CompressWeightsMode", "backup_mode": "BackupMode", "sensitivity_metric": "SensitivityMetric"}
NNCF_TABLE_TITLE = "Statistics of the bitwidth distribution"


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
    fallback = out.pop("group_size_fallback", None)
    if fallback is not None:
        from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode
        out["advanced_parameters"] = AdvancedCompressionParameters(
            group_size_fallback_mode=GroupSizeFallbackMode(fallback))
    return out


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:  # noqa: BLE001 - never break compression over a log line
            pass


@contextlib.contextmanager
def capture_nncf_log() -> Iterator[list[str]]:
    """Collect NNCF's log messages (INFO and up) while the block runs; they still reach NNCF's own output."""
    from nncf.common.logging import nncf_logger

    handler = _Capture()
    old_level = nncf_logger.level
    nncf_logger.addHandler(handler)
    if nncf_logger.level > logging.INFO or nncf_logger.level == logging.NOTSET:
        nncf_logger.setLevel(logging.INFO)
    try:
        yield handler.messages
    finally:
        nncf_logger.removeHandler(handler)
        nncf_logger.setLevel(old_level)


def nncf_table(messages: list[str]) -> str | None:
    """The last "Statistics of the bitwidth distribution" table NNCF logged, as text."""
    tables = [m for m in messages if m.startswith(NNCF_TABLE_TITLE)]
    return tables[-1] if tables else None


def to_nncf_quantize(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Plain recipe values -> ``nncf.quantize`` keywords (preset, model type, SmoothQuant alpha, bias correction,
    IgnoredScope)."""
    import nncf

    out = dict(kwargs)
    out["preset"] = nncf.QuantizationPreset(out["preset"])
    if "model_type" in out:
        out["model_type"] = nncf.ModelType(out["model_type"])
    advanced: dict[str, Any] = {}
    if "smooth_quant_alpha" in out:
        from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

        advanced["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(matmul=out.pop("smooth_quant_alpha"))
    if out.pop("bias_correction", True) is False:
        advanced["disable_bias_correction"] = True
    if advanced:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

        out["advanced_parameters"] = AdvancedQuantizationParameters(**advanced)
    if "ignored_scope" in out:
        out["ignored_scope"] = nncf.IgnoredScope(**out["ignored_scope"], validate=False)
    return out


def _subset_size(dataset, subset_size: int | None) -> int:
    length = dataset.get_length() if hasattr(dataset, "get_length") else None
    size = subset_size if subset_size is not None else 128
    return max(1, min(size, length) if length else size)


def compress_model(ov_model, policy: Any, dataset=None, subset_size: int | None = None,
                   log_messages: list[str] | None = None):
    """Compress (or, for int8_static, quantize) ``ov_model`` and return the result.

    ``policy`` is a recipe ``PartCompression`` or a dict of its fields. ``dataset`` (an ``nncf.Dataset``) is
    needed by data-aware policies; ``subset_size`` is NNCF's number of dataset items for statistics (default:
    NNCF's 128, capped at the dataset's length). NNCF's log lines (its bit-width table among them) are
    appended to ``log_messages`` when given.
    """
    import nncf

    if isinstance(policy, dict):
        from ovexport.recipe.schema import PartCompression
        policy = PartCompression.model_validate(policy)
    if policy.is_static:
        if dataset is None:
            raise ValueError("int8_static (nncf.quantize) needs a calibration dataset")
        kwargs = to_nncf_quantize(policy.quantize_kwargs())
        kwargs["subset_size"] = _subset_size(dataset, subset_size)
        run = lambda: nncf.quantize(ov_model, dataset, **kwargs)  # noqa: E731
    else:
        kwargs = to_nncf(policy.nncf_kwargs())
        if dataset is not None:
            kwargs["dataset"] = dataset
            kwargs["subset_size"] = _subset_size(dataset, subset_size)
        run = lambda: nncf.compress_weights(ov_model, **kwargs)  # noqa: E731
    with capture_nncf_log() as messages:
        out = run()
    if log_messages is not None:
        log_messages.extend(messages)
    return out
