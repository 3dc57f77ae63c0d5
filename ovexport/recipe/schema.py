"""The recipe schema: WHAT to build. Pydantic v2, every model rejects unknown keys.

A recipe names a checkpoint source, how to export it (weight dtype, trace size), which steps run, how each
part is compressed (NNCF weight compression), how the result is validated against PyTorch, and where the
bundle goes. ``load.py`` turns YAML into a ``Recipe`` with ``file:line`` errors; this module knows nothing
about files except that local paths in a recipe are relative to the recipe file's directory
(``Recipe.base_dir``, set by the loader or by ``Recipe.model_validate(data, context={"base_dir": ...})``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from ovexport.recipe.source import (
    CalibrationSource,
    Source,
    parse_calibration_source,
    parse_source,
)

# The engine's registered steps, in pipeline order. Kept here as a constant so that the schema does not
# import the engine; the engine is expected to check that it registers exactly these names.
STEP_NAMES: tuple[str, ...] = (
    "download",
    "convert_text_embeddings",
    "convert_llm",
    "make_stateful",
    "convert_image_encoder",
    "compress",
    "validate",
    "package",
)
StepName = Literal[
    "download",
    "convert_text_embeddings",
    "convert_llm",
    "make_stateful",
    "convert_image_encoder",
    "compress",
    "validate",
    "package",
]

PART_NAMES: tuple[str, ...] = ("llm", "image_encoder", "text_embeddings")

WeightDtype = Literal["fp32", "fp16", "bf16"]
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
InferencePrecision = Literal["f32", "bf16", "f16"]
KVCachePrecision = Literal["f32", "f16", "bf16", "u8"]

INT4_MODES: tuple[str, ...] = ("int4_sym", "int4_asym")
INT8_MODES: tuple[str, ...] = ("int8_sym", "int8_asym")
STATIC_MODES: tuple[str, ...] = ("int8_static",)
# PartCompression options that only int8_static (nncf.quantize) takes, with their defaults
STATIC_OPTIONS: dict[str, Any] = {"preset": "performance", "model_type": "transformer", "fast_bias_correction": True,
                                  "smooth_quant_alpha": None}
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

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# semver.org's recommended regex (with prerelease and build metadata)
SEMVER_RE = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

# The image encoder's position embedding is 27x27 (patch 14 at 378 px). Tracing at 378 px makes the grid
# exactly 27x27, so the traced graph skips the position-embedding resize and only works at 378 px.
FORBIDDEN_TRACE_SIZE = 378
PATCH_SIZE = 14

Ratio = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Cosine = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def raise_at(title: str, problems: list[tuple[tuple[str | int, ...], str, Any]]) -> None:
    """Raise a pydantic ValidationError whose errors sit at the given locations (relative to the model being
    validated), so that a model-level rule can point at the offending field (and the loader at its line)."""
    if not problems:
        return
    details = [
        InitErrorDetails(type=PydanticCustomError("recipe_rule", "{reason}", {"reason": msg}), loc=loc, input=value)
        for loc, msg, value in problems
    ]
    raise ValidationError.from_exception_data(title, details)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------- export


class ExportSpec(_Model):
    weight_dtype: WeightDtype = Field(
        "fp16", description="dtype of the weights stored in the IR (compute precision is validation's business)")
    trace_image_size: int = Field(
        448,
        ge=PATCH_SIZE,
        description="image size (pixels, square) the image encoder is traced at; a multiple of 14, not 378 "
                    "(a 27x27 patch grid skips the position-embedding resize, so the graph would not generalise)",
    )

    @field_validator("trace_image_size")
    @classmethod
    def _trace_size(cls, v: int) -> int:
        if v % PATCH_SIZE:
            raise ValueError(f"must be a multiple of the patch size {PATCH_SIZE} (e.g. 448), got {v}")
        if v == FORBIDDEN_TRACE_SIZE:
            raise ValueError("378 gives a 27x27 patch grid, where the image encoder skips the position-embedding "
                             "resize, so the traced graph would not work at other sizes; use e.g. 448")
        return v


# ---------------------------------------------------------------------------------------- compression


class IgnoredScopeSpec(_Model):
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


class PartCompression(_Model):
    """NNCF weight compression of one part (``nncf.compress_weights`` arguments)."""

    mode: CompressionMode
    group_size: Optional[int] = Field(
        None, description="int4: default 64, -1 = per-channel; int8: always per-channel (-1)")
    ratio: Ratio = Field(1.0, description="int4 only: share of layers in int4, the rest in backup_mode")
    all_layers: bool = False
    backup_mode: Optional[BackupMode] = Field(None, description="int4 only; default int8_asym")
    sensitivity_metric: Optional[SensitivityMetric] = None
    ignored_scope: IgnoredScopeSpec = Field(default_factory=IgnoredScopeSpec)
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
        for opt in DATA_AWARE_OPTIONS:
            if getattr(self, opt):
                kw[opt] = True
        return kw

    def quantize_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``nncf.quantize`` (int8_static) as plain values; the caller converts ``preset`` ->
        ``nncf.QuantizationPreset``, ``model_type`` -> ``nncf.ModelType``, ``ignored_scope`` -> ``nncf.IgnoredScope`` and
        ``smooth_quant_alpha`` -> ``AdvancedQuantizationParameters(smooth_quant_alphas=...)``, and adds ``dataset``
        and ``subset_size``."""
        if not self.is_static:
            raise ValueError(f"{self.mode} is nncf.compress_weights, not nncf.quantize: use nncf_kwargs()")
        kw: dict[str, Any] = {"preset": self.preset, "fast_bias_correction": self.fast_bias_correction}
        if self.model_type == "transformer":
            kw["model_type"] = "transformer"
        if self.smooth_quant_alpha is not None:
            kw["smooth_quant_alpha"] = self.smooth_quant_alpha
        if not self.ignored_scope.empty:
            kw["ignored_scope"] = self.ignored_scope.model_dump()
        return kw


class CompressionSpec(_Model):
    """Per-part weight compression; ``null`` leaves a part uncompressed (weights stay in export.weight_dtype)."""

    llm: Optional[PartCompression] = None
    image_encoder: Optional[PartCompression] = None
    text_embeddings: Optional[PartCompression] = None

    def parts(self) -> dict[str, PartCompression]:
        """The compressed parts, in PART_NAMES order."""
        return {p: getattr(self, p) for p in PART_NAMES if getattr(self, p) is not None}

    @property
    def enabled(self) -> bool:
        return bool(self.parts())


class CalibrationSpec(_Model):
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


# ----------------------------------------------------------------------------------------- validation


class TextEmbeddingsThresholds(_Model):
    max_abs_diff: Optional[NonNegFloat] = 0.0


class ImageEncoderThresholds(_Model):
    max_abs_diff: Optional[NonNegFloat] = 1e-4
    min_cosine: Optional[Cosine] = 0.99999


class LLMThresholds(_Model):
    max_abs_diff: Optional[NonNegFloat] = 1e-3
    min_cosine: Optional[Cosine] = None
    min_top1_agreement: Optional[Fraction] = 1.0
    max_kl: Optional[NonNegFloat] = None


class EndToEndThresholds(_Model):
    min_token_agreement: Optional[Fraction] = 1.0


class ThresholdsSpec(_Model):
    """Numerical-parity gates, IR vs PyTorch. Every field: a number, or null = measured but not gated.
    Defaults suit an fp32 export; compressed / fp16 recipes override them."""

    text_embeddings: TextEmbeddingsThresholds = Field(default_factory=TextEmbeddingsThresholds)
    image_encoder: ImageEncoderThresholds = Field(default_factory=ImageEncoderThresholds)
    llm: LLMThresholds = Field(default_factory=LLMThresholds)
    end_to_end: EndToEndThresholds = Field(default_factory=EndToEndThresholds)


class ValidationSpec(_Model):
    device: str = Field("CPU", min_length=1)
    inference_precision: InferencePrecision = Field("f32", description="pinned as INFERENCE_PRECISION_HINT")
    kv_cache_precision: KVCachePrecision = Field("f32", description="pinned as KV_CACHE_PRECISION")
    decode_steps: int = Field(4, ge=1, description="teacher-forced decode steps compared per position")
    generate_tokens: int = Field(8, ge=1, description="greedy tokens generated end to end")
    seed: int = Field(0, ge=0)
    thresholds: ThresholdsSpec = Field(default_factory=ThresholdsSpec)

    def ov_config(self) -> dict[str, str]:
        """OpenVINO properties the validator (and the bundle's runtime config) pin."""
        return {"INFERENCE_PRECISION_HINT": self.inference_precision, "KV_CACHE_PRECISION": self.kv_cache_precision}


# --------------------------------------------------------------------------------------------- output


class PublishSpec(_Model):
    repo_id: str
    private: bool = True

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, v: str) -> str:
        if not REPO_ID_RE.match(v):
            raise ValueError(f"{v!r} is not a Hugging Face repo id; expected <owner>/<name>")
        return v


class OutputSpec(_Model):
    root: Path = Field(Path("dist"), description="bundles go to <root>/<name>/<version>/; relative to the "
                                                 "current working directory, not to the recipe file")
    publish: Optional[PublishSpec] = None


# --------------------------------------------------------------------------------------------- recipe


class Recipe(_Model):
    name: str = Field(description="slug: [a-z0-9][a-z0-9._-]*")
    version: str = Field(description="semantic version of the bundle, e.g. 1.0.0 or 1.1.0-rc.1+build.5")
    description: Optional[str] = None
    source: str = Field(description="hf://<owner>/<name>@<commit sha> | <local dir> | synthetic://tiny|full?seed=N")
    export: ExportSpec = Field(default_factory=ExportSpec)
    steps: list[StepName] = Field(default_factory=lambda: list(STEP_NAMES))
    compression: CompressionSpec = Field(default_factory=CompressionSpec)
    calibration: Optional[CalibrationSpec] = None
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    output: OutputSpec = Field(default_factory=OutputSpec)

    # where the recipe came from: local paths (source, calibration.source) resolve against _base_dir
    _base_dir: Optional[Path] = PrivateAttr(default=None)
    _path: Optional[Path] = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a slug: use lower-case letters, digits, '.', '_' and '-', starting "
                             "with a letter or digit (e.g. minicpmv2-int4)")
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        if not SEMVER_RE.match(v):
            raise ValueError(f"{v!r} is not a semantic version MAJOR.MINOR.PATCH[-prerelease][+build] "
                             "(e.g. 1.0.0; quote it in YAML)")
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        parse_source(v)  # syntax only; local paths are resolved against base_dir by source_spec
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        problems: list[tuple[tuple[int, ...], str, Any]] = []
        if not v:
            raise ValueError("no steps; leave steps out to run all of " + ", ".join(STEP_NAMES))
        seen: dict[str, int] = {}
        for i, step in enumerate(v):
            if step in seen:
                problems.append(((i,), f"step {step!r} is listed twice (also at steps.{seen[step]})", step))
            else:
                seen[step] = i
        if not problems:
            order = [STEP_NAMES.index(s) for s in v]
            if order != sorted(order):
                raise ValueError("steps must be in pipeline order: "
                                 + ", ".join(s for s in STEP_NAMES if s in seen))
        raise_at("steps", problems)
        return v

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> "Recipe":
        problems: list[tuple[tuple[str, ...], str, Any]] = []
        if self.calibration is None:
            for part, spec in self.compression.parts().items():
                for opt in spec.data_aware_options():
                    value = getattr(spec, opt)
                    what = (f"sensitivity_metric {value}" if opt == "sensitivity_metric"
                            else f"mode {value}" if opt == "mode" else opt)
                    problems.append((("compression", part, opt),
                                     f"{what} is data-aware and needs a top-level calibration block "
                                     "(e.g. calibration: {source: builtin})", value))
        raise_at("Recipe", problems)
        ctx = info.context or {}
        if ctx.get("base_dir") is not None:
            self._base_dir = Path(ctx["base_dir"])
        if ctx.get("path") is not None:
            self._path = Path(ctx["path"])
        return self

    # ---- derived views

    @property
    def base_dir(self) -> Path | None:
        """Directory of the recipe file (None when built in code without context)."""
        return self._base_dir

    @property
    def path(self) -> Path | None:
        """The recipe file, when loaded from one."""
        return self._path

    @property
    def source_spec(self) -> Source:
        return parse_source(self.source, self._base_dir)

    @property
    def calibration_source(self) -> CalibrationSource | None:
        if self.calibration is None:
            return None
        return parse_calibration_source(self.calibration.source, self._base_dir)

    @property
    def bundle_dir(self) -> Path:
        """``<output.root>/<name>/<version>`` (relative to the working directory unless root is absolute)."""
        return self.output.root / self.name / self.version

    @property
    def work_dir(self) -> Path:
        """``<output.root>/.work/<name>``: where step artifacts live."""
        return self.output.root / ".work" / self.name

    def with_context(self, base_dir: Path | None, path: Path | None = None) -> "Recipe":
        """Set where local paths resolve from (for recipes built in code). Returns self."""
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._path = Path(path) if path is not None else None
        return self


# ------------------------------------------------------------------------------------------- pipeline


class PipelinePublish(_Model):
    repo_id_prefix: str = Field(description="a recipe without output.publish is published to "
                                            "<repo_id_prefix><recipe name>, e.g. 'myorg/' or 'myorg/ov-'")

    @field_validator("repo_id_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not REPO_ID_RE.match(v + "x"):
            raise ValueError(f"{v!r} must be '<owner>/' or '<owner>/<name prefix>' so that adding a recipe "
                             "name gives a Hugging Face repo id")
        return v


class PipelineSpec(_Model):
    recipes: list[str] = Field(min_length=1, description="recipe files, relative to the pipeline file")
    publish: Optional[PipelinePublish] = None

    def publish_repo_id(self, recipe: Recipe) -> str | None:
        """Where ``recipe`` is published: its own output.publish.repo_id, else prefix + name, else None."""
        if recipe.output.publish is not None:
            return recipe.output.publish.repo_id
        if self.publish is not None:
            return self.publish.repo_id_prefix + recipe.name
        return None
