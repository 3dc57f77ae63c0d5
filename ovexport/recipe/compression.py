"""The recipe's ``compression:`` (per part, NNCF) and ``calibration:`` blocks.

The parts are those of ``ovexport.parts``: ``compression.<part key>``; ``null`` (the default) leaves a part
uncompressed.
"""
from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import Field, create_model, field_validator, model_validator

from ovexport.parts import PART_KEYS
from ovexport.recipe.source import parse_calibration_source

from .fields import Ratio, StrictModel, raise_at

# int4_* / int8_*: weight compression (``nncf.compress_weights``: weights stored in 4/8 bits, computed in floating
# point). int8_static: post-training quantization (``nncf.quantize``): weights AND activations in int8, so the
# matrix products run as int8 dot products (VNNI/AMX); it needs calibration data.
CompressionMode = Literal["int4_sym", "int4_asym", "int8_sym", "int8_asym", "int8_static"]
QuantizationPreset = Literal["performance", "mixed"]
QuantizationModelType = Literal["transformer", "generic"]
BackupMode = Literal["int8_asym", "int8_sym", "none"]
SensitivityMetric = Literal[
    "weight_quantization_error",
    "hessian_input_activation",
    "mean_activation_variance",
    "max_activation_variance",
    "mean_activation_magnitude",
]

INT4_MODES: tuple[str, ...] = ("int4_sym", "int4_asym")
INT8_MODES: tuple[str, ...] = ("int8_sym", "int8_asym")
STATIC_MODES: tuple[str, ...] = ("int8_static",)
# PartCompression options that only int8_static (nncf.quantize) takes, with their defaults
STATIC_OPTIONS: dict[str, Any] = {"preset": "performance", "model_type": "transformer", "bias_correction": True,
                                  "fast_bias_correction": True, "smooth_quant_alpha": None}
DEFAULT_INT4_GROUP_SIZE = 64
DEFAULT_BACKUP_MODE = "int8_asym"
# Sensitivity metrics that need activations, i.e. a calibration data set.
DATA_AWARE_METRICS: tuple[str, ...] = (
    "hessian_input_activation",
    "mean_activation_variance",
    "max_activation_variance",
    "mean_activation_magnitude",
)
# Boolean options of PartCompression that are data-aware algorithms.
DATA_AWARE_OPTIONS: tuple[str, ...] = ("awq", "scale_estimation", "gptq", "lora_correction")


class IgnoredScopeSpec(StrictModel):
    """Nodes NNCF must leave alone (maps to nncf.IgnoredScope)."""

    names: list[str] = Field(default_factory=list)
    patterns: list[str] = Field(default_factory=list, description="regular expressions over node names")
    types: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a valid regular expression: {exc}") from None
        return v

    @property
    def empty(self) -> bool:
        return not (self.names or self.patterns or self.types)


class PartCompression(StrictModel):
    """NNCF weight compression of one part (``nncf.compress_weights`` arguments)."""

    mode: CompressionMode
    group_size: Optional[int] = Field(
        None, description="int4: default 64, -1 = per-channel; int8: always per-channel (-1)")
    ratio: Ratio = Field(1.0, description="int4 only: share of layers in int4, the rest in backup_mode")
    all_layers: bool = False
    backup_mode: Optional[BackupMode] = Field(None, description="int4 only; default int8_asym")
    sensitivity_metric: Optional[SensitivityMetric] = None
    ignored_scope: IgnoredScopeSpec = Field(default_factory=IgnoredScopeSpec)
    group_size_fallback: Optional[Literal["error", "ignore", "adjust"]] = Field(
        None, description="int4: a layer whose input channels are not a multiple of group_size: NNCF's 'error' "
                          "(default), 'ignore' (keep it in backup_mode) or 'adjust' (a smaller group that divides)")
    awq: bool = False
    scale_estimation: bool = False
    gptq: bool = False
    lora_correction: bool = False
    # int8_static only (nncf.quantize)
    preset: Optional[QuantizationPreset] = Field(
        None, description="int8_static: 'performance' (symmetric activations, default) or 'mixed' (asymmetric)")
    model_type: Optional[QuantizationModelType] = Field(
        None, description="int8_static: 'transformer' (default: NNCF's transformer scheme, SmoothQuant, attention "
                          "MatMuls) or 'generic'")
    bias_correction: Optional[bool] = Field(
        None, description="int8_static: correct the biases for the quantization's shift (default true); false = "
                          "none (NNCF's disable_bias_correction), which spares its statistics' memory")
    fast_bias_correction: Optional[bool] = Field(None, description="int8_static: NNCF's fast bias correction "
                                                                 "(default true); false = the slower full one")
    smooth_quant_alpha: Optional[float] = Field(
        None, ge=-1.0, le=1.0, description="int8_static: SmoothQuant alpha for MatMuls; -1 disables it; default "
                                           "NNCF's for transformers")

    @field_validator("group_size")
    @classmethod
    def _group_size(cls, v: int | None) -> int | None:
        if v is not None and v != -1 and v <= 0:
            raise ValueError(f"must be a positive number of channels per group or -1 (per-channel), got {v}")
        return v

    @model_validator(mode="after")
    def _mode_rules(self) -> "PartCompression":
        problems: list[tuple[tuple[str, ...], str, Any]] = []
        if self.mode not in STATIC_MODES:
            for opt in STATIC_OPTIONS:
                if getattr(self, opt) is not None:
                    problems.append(((opt,), f"{opt} only applies to int8_static (nncf.quantize), not {self.mode}; "
                                     f"remove {opt}", getattr(self, opt)))
        if self.bias_correction is False and self.fast_bias_correction is not None:
            problems.append((("fast_bias_correction",), "fast_bias_correction chooses which bias correction runs, "
                             "and bias_correction: false runs none; remove fast_bias_correction",
                             self.fast_bias_correction))
        if self.mode in INT8_MODES or self.mode in STATIC_MODES:
            if self.group_size not in (None, -1):
                problems.append((("group_size",), f"{self.mode} is per-channel: group_size only applies to int4 "
                                 "modes; remove group_size (or set -1)", self.group_size))
            if self.ratio != 1.0:
                problems.append((("ratio",), f"{self.mode} compresses every layer: ratio only applies to int4 "
                                 "modes; remove ratio", self.ratio))
            if self.all_layers:
                problems.append((("all_layers",), f"{self.mode} already compresses all layers: remove all_layers",
                                 self.all_layers))
            if self.backup_mode is not None:
                problems.append((("backup_mode",), f"backup_mode only applies to int4 modes, not {self.mode}; "
                                 "remove backup_mode", self.backup_mode))
            if self.group_size_fallback is not None:
                problems.append((("group_size_fallback",), f"group_size_fallback only applies to int4 modes, not "
                                 f"{self.mode}; remove it", self.group_size_fallback))
            if self.sensitivity_metric is not None:
                problems.append((("sensitivity_metric",), "sensitivity_metric only applies to int4 modes (mixed "
                                 f"precision), not {self.mode}; remove it", self.sensitivity_metric))
            for opt in DATA_AWARE_OPTIONS:
                if getattr(self, opt):
                    problems.append(((opt,), f"{opt} needs an int4 mode (int4_sym or int4_asym), not {self.mode}",
                                     True))
        if self.gptq and self.lora_correction:
            problems.append((("lora_correction",), "gptq and lora_correction cannot be used together; "
                             "choose one", True))
        raise_at("PartCompression", problems)
        # resolve defaults that depend on the mode, so that dumps and fingerprints are explicit
        if self.mode in INT4_MODES:
            if self.group_size is None:
                self.group_size = DEFAULT_INT4_GROUP_SIZE
            if self.backup_mode is None:
                self.backup_mode = DEFAULT_BACKUP_MODE
        else:
            self.group_size = -1
        if self.mode in STATIC_MODES:
            for opt, default in STATIC_OPTIONS.items():
                if opt == "fast_bias_correction" and self.bias_correction is False:
                    continue
                if getattr(self, opt) is None and default is not None:
                    setattr(self, opt, default)
        return self

    @property
    def is_int4(self) -> bool:
        return self.mode in INT4_MODES

    @property
    def is_static(self) -> bool:
        """Post-training quantization (nncf.quantize) rather than weight compression."""
        return self.mode in STATIC_MODES

    def data_aware_options(self) -> list[str]:
        """Names of the set options that need calibration data."""
        if self.is_static:
            return ["mode"]
        used = [opt for opt in DATA_AWARE_OPTIONS if getattr(self, opt)]
        if self.sensitivity_metric in DATA_AWARE_METRICS:
            used.append("sensitivity_metric")
        return used

    @property
    def data_aware(self) -> bool:
        return bool(self.data_aware_options())

    def nncf_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nncf.compress_weights`` as plain values (no nncf import here).

        The caller converts: ``mode`` -> ``nncf.CompressWeightsMode(v)``, ``backup_mode`` ->
        ``nncf.BackupMode(v)``, ``sensitivity_metric`` -> ``nncf.SensitivityMetric(v)``, ``ignored_scope`` ->
        ``nncf.IgnoredScope(**v)``, and adds ``dataset``/``subset_size`` when ``data_aware``. Options NNCF rejects
        for int8 modes (ratio, group_size, all_layers, backup_mode, ...) are left out for them.
        """
        kw: dict[str, Any] = {"mode": self.mode}
        if not self.ignored_scope.empty:
            kw["ignored_scope"] = self.ignored_scope.model_dump()
        if self.is_static:
            raise ValueError("int8_static is nncf.quantize, not nncf.compress_weights: use quantize_kwargs()")
        if self.mode in INT8_MODES:
            return kw
        kw.update(group_size=self.group_size, ratio=self.ratio, all_layers=self.all_layers,
                  backup_mode=self.backup_mode)
        if self.sensitivity_metric is not None:
            kw["sensitivity_metric"] = self.sensitivity_metric
        if self.group_size_fallback is not None:
            kw["group_size_fallback"] = self.group_size_fallback
        for opt in DATA_AWARE_OPTIONS:
            if getattr(self, opt):
                kw[opt] = True
        return kw

    def quantize_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nncf.quantize`` (int8_static) as plain values; the caller converts ``preset`` ->
        ``nncf.QuantizationPreset``, ``model_type`` -> ``nncf.ModelType``, ``ignored_scope`` -> ``nncf.IgnoredScope``,
        ``smooth_quant_alpha`` -> ``AdvancedQuantizationParameters(smooth_quant_alphas=...)`` and ``bias_correction:
        False`` -> ``AdvancedQuantizationParameters(disable_bias_correction=True)``, and adds ``dataset``
        and ``subset_size``."""
        if not self.is_static:
            raise ValueError(f"{self.mode} is nncf.compress_weights, not nncf.quantize: use nncf_kwargs()")
        kw: dict[str, Any] = {"preset": self.preset}
        if self.bias_correction:
            kw["fast_bias_correction"] = self.fast_bias_correction
        else:
            kw["bias_correction"] = False
        if self.model_type == "transformer":
            kw["model_type"] = "transformer"
        if self.smooth_quant_alpha is not None:
            kw["smooth_quant_alpha"] = self.smooth_quant_alpha
        if not self.ignored_scope.empty:
            kw["ignored_scope"] = self.ignored_scope.model_dump()
        return kw


class _CompressionOfParts(StrictModel):
    def parts(self) -> dict[str, PartCompression]:
        """The compressed parts, in ``ovexport.parts`` order."""
        return {k: getattr(self, k) for k in PART_KEYS if getattr(self, k) is not None}

    @property
    def enabled(self) -> bool:
        return bool(self.parts())


# one optional field per part of the parts table: compression.text_embeddings, compression.llm, ...
CompressionSpec = create_model(
    "CompressionSpec", __base__=_CompressionOfParts, __module__=__name__,
    __doc__="Per-part weight compression; ``null`` leaves a part uncompressed (weights stay in export.weight_dtype).",
    **{key: (Optional[PartCompression], None) for key in PART_KEYS},
)


class CalibrationSpec(StrictModel):
    source: str = Field(
        "builtin",
        description="'builtin' (small generated set shipped with ovexport), a directory of images + "
                    "questions.jsonl (relative to the recipe file), or 'hf-dataset:<name>[:<split>]'",
    )
    num_samples: int = Field(32, ge=1, description="calibration samples drawn from the source")
    subset_size: int = Field(128, ge=1, description="NNCF subset_size for activation statistics")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        parse_calibration_source(v)
        return v
