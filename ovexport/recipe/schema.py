"""The recipe schema: WHAT to build. Pydantic v2, every model rejects unknown keys.

A recipe names a checkpoint source, how to export it (weight dtype, trace size), which steps run, how each
part is compressed (``compression.py``), how the result is validated against PyTorch (``validation.py``), and
where the bundle goes. ``load.py`` turns YAML into a ``Recipe`` with ``file:line`` errors; this module knows
nothing about files except that local paths in a recipe are relative to the recipe file's directory
(``Recipe.base_dir``, set by the loader or by ``Recipe.model_validate(data, context={"base_dir": ...})``).

What depends on the model (e.g. the sizes its image encoder can be traced at) is asked of its family when the
source names it without a download (synthetic, or a local folder); otherwise the convert step asks it.
The steps, and their order, are the engine's step registry's (it imports the built-in steps when asked).
"""
from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ovexport.engine.step import REGISTRY
from ovexport.models.registry import default_trace_size, families
from ovexport.recipe.source import CalibrationSource, Source, parse_calibration_source, parse_source

from .compression import (  # noqa: F401  (re-exported: the schema's public names)
    DATA_AWARE_METRICS,
    DATA_AWARE_OPTIONS,
    INT4_MODES,
    INT8_MODES,
    STATIC_MODES,
    CalibrationSpec,
    CompressionSpec,
    IgnoredScopeSpec,
    PartCompression,
)
from .fields import StrictModel, raise_at
from .names import NAME_RE, REPO_ID_RE, SEMVER_RE
from .pipeline_spec import PipelinePublish, PipelineSpec  # noqa: F401
from .validation import (  # noqa: F401
    EndToEndThresholds,
    ImageEncoderThresholds,
    LLMThresholds,
    TextEmbeddingsThresholds,
    ThresholdsSpec,
    ValidationSpec,
)

WeightDtype = Literal["fp32", "fp16", "bf16"]


def step_names() -> tuple[str, ...]:
    """The registered steps in pipeline order (the engine's step registry)."""
    return tuple(REGISTRY.pipeline_order())


# --------------------------------------------------------------------------------------------- export


class ExportSpec(StrictModel):
    weight_dtype: WeightDtype = Field(
        "fp16", description="dtype of the weights stored in the IR (compute precision is validation's business)")
    trace_image_size: Optional[int] = Field(
        None, ge=1,
        description="image size (pixels, square) the image encoder is traced at; default: the model family's "
                    "own (Recipe.trace_size()). The family says which sizes give a graph that works at every size",
    )


def trace_size_problem(candidates: list, size: int) -> str | None:
    """Why no family the recipe may build can trace its image encoder at ``size`` (None when one can). The
    candidates: the family the source names, or, for a source known only after a download, every family."""
    problems = [(f, f.trace_size_problem(size)) for f in candidates]
    if not problems or any(p is None for _, p in problems):
        return None
    if len(problems) == 1:
        return problems[0][1]
    return "; ".join(f"{f.display_name}: {p}" for f, p in problems)


def _family_of(source: str, base_dir: Any):
    """The model family ``source`` names without a download, or None."""
    from ovexport.errors import OvexportError
    from ovexport.models.registry import family_of_source

    try:
        return family_of_source(parse_source(source, base_dir))
    except (OvexportError, ValueError):
        return None


# --------------------------------------------------------------------------------------------- output


class PublishSpec(StrictModel):
    repo_id: str
    private: bool = True

    @field_validator("repo_id")
    @classmethod
    def _repo_id(cls, v: str) -> str:
        if not REPO_ID_RE.match(v):
            raise ValueError(f"{v!r} is not a Hugging Face repo id; expected <owner>/<name>")
        return v


class OutputSpec(StrictModel):
    root: Path = Field(Path("dist"), description="bundles go to <root>/<name>/<version>/; relative to the "
                                                 "current working directory, not to the recipe file")
    publish: Optional[PublishSpec] = None


# --------------------------------------------------------------------------------------------- recipe


class Recipe(StrictModel):
    name: str = Field(description="slug: [a-z0-9][a-z0-9._-]*")
    version: str = Field(description="semantic version of the bundle, e.g. 1.0.0 or 1.1.0-rc.1+build.5")
    description: Optional[str] = None
    source: str = Field(description="hf://<owner>/<name>@<commit sha> | <local dir> | synthetic://tiny|full?seed=N")
    export: ExportSpec = Field(default_factory=ExportSpec, validate_default=True)
    steps: list[str] = Field(default_factory=lambda: list(step_names()),
                             description="steps to run, in pipeline order; default: all registered steps")
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
                             "with a letter or digit (e.g. mymodel-int4)")
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

    @field_validator("export")
    @classmethod
    def _export(cls, v: ExportSpec, info: ValidationInfo) -> ExportSpec:
        if v.trace_image_size is None:  # the family's own size
            return v
        source = info.data.get("source")
        family = _family_of(source, (info.context or {}).get("base_dir")) if source else None
        problem = trace_size_problem([family] if family is not None else list(families().values()),
                                     v.trace_image_size)
        if problem:
            raise_at("ExportSpec", [(("trace_image_size",), problem, v.trace_image_size)])
        return v

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: list[str]) -> list[str]:
        problems: list[tuple[tuple[int, ...], str, Any]] = []
        names = step_names()
        if not v:
            raise ValueError("no steps; leave steps out to run all of " + ", ".join(names))
        seen: dict[str, int] = {}
        for i, step in enumerate(v):
            if step not in names:
                close = difflib.get_close_matches(step, names, n=1)
                hint = f"did you mean {close[0]!r}?" if close else f"the steps are {', '.join(names)}"
                problems.append(((i,), f"unknown step {step!r}; {hint}", step))
            elif step in seen:
                problems.append(((i,), f"step {step!r} is listed twice (also at steps.{seen[step]})", step))
            else:
                seen[step] = i
        if not problems:
            order = [names.index(s) for s in v]
            if order != sorted(order):
                raise ValueError("steps must be in pipeline order: "
                                 + ", ".join(s for s in names if s in seen))
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

    def trace_size(self, family=None) -> int | None:
        """The image size the image encoder is traced at: ``export.trace_image_size``, else the default of
        ``family`` or of the family the source names without a download. None only for a source whose family is
        known after its download (a Hub source) when ``family`` is not given."""
        if self.export.trace_image_size is not None:
            return self.export.trace_image_size
        family = family if family is not None else _family_of(self.source, self._base_dir)
        return None if family is None else default_trace_size(family)

    def resolved(self, family=None) -> dict[str, Any]:
        """JSON-safe dict of the recipe with every default filled in (the model's own ones from ``family``, or
        from the family the source names without a download) and sources in canonical form (local paths resolved
        against the recipe file), for manifests and fingerprints."""
        d = self.model_dump(mode="json")
        d["export"]["trace_image_size"] = self.trace_size(family)
        d["source"] = self.source_spec.uri
        cal = self.calibration_source
        if cal is not None:
            d["calibration"]["source"] = cal.uri
        return d

    def with_context(self, base_dir: Path | None, path: Path | None = None) -> "Recipe":
        """Set where local paths resolve from (for recipes built in code). Returns self."""
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._path = Path(path) if path is not None else None
        return self
