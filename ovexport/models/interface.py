"""What generic code may ask a model family, typed: the family itself, its runtime adapter, its PyTorch
reference, its publishing facts, and the small records they hand over.

Generic code (steps, validators, runtime, CLI) only sees these Protocols; everything specific to one model
(MiniCPM-V-2's sizes, presets, slicer grids, titles) lives in that model's package, which registers an
object satisfying ``ModelFamily`` (``ovexport.models.registry.register_family``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ovexport.exporter.spec import PartSpec


# ------------------------------------------------------------------------------------------ records


@dataclass
class PreparedInput:
    """Everything the model needs for one chat turn, as the family's prompt code builds it. A family subclasses it
    to carry what its ``merge`` and ``position_ids`` need (where the features go, the image's grid...); generic
    code reads only these fields."""

    input_ids: np.ndarray  # int64 [L], BOS first
    pixel_values: list[np.ndarray] = field(default_factory=list)  # the image pieces the encoder gets, in the
                                                                  # family's layout (one per feature block)
    prompt: str = ""

    @property
    def layout(self) -> Any:
        """How the family laid the image out (e.g. a slice grid ``(cols, rows)``), None when kept whole: what
        ``ValidationCases.end_to_end`` expects."""
        return None


@dataclass(frozen=True)
class ImageBatch:
    """One call of the image encoder: the IR inputs (``inputs``) that give the features of ``pieces`` (indices into
    ``PreparedInput.pixel_values``), ``[len(pieces), Q, D]``."""

    pieces: tuple[int, ...]
    inputs: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class GenerationPresets:
    """The model's own decoding defaults, as ``GenerationConfig`` keyword arguments (``sampling`` includes
    ``do_sample=True``, ``beam`` includes ``num_beams``)."""

    sampling: Mapping[str, Any]
    beam: Mapping[str, Any]


# name -> (width, height, expected image layout of the family's preprocessing, e.g. a slice grid; None = whole)
EndToEndCase = tuple[int, int, "tuple[int, int] | None"]


@dataclass(frozen=True)
class ValidationCases:
    """The inputs the parity checks feed a family's IRs: the images that exercise its image encoder (as encoder
    batches, ``ModelFamily.image_encoder_cases``) and the images the end-to-end check answers about."""

    end_to_end: Mapping[str, EndToEndCase]
    prompt_image: tuple[int, int]                    # (W, H) of the image in the LLM check's prompt
    pixel_range: tuple[float, float] = (-1.0, 1.0)   # the range of the image encoder's normalised pixel values


# ------------------------------------------------------------------------------------------ protocols


class ModelConfig(Protocol):
    """The few ``config.json`` facts generic code reads."""

    vocab_size: int
    patch_size: int
    max_position_embeddings: int


class Tokenizer(Protocol):
    @property
    def bos_id(self) -> int: ...
    @property
    def eos_id(self) -> int: ...
    @property
    def pad_id(self) -> int: ...
    def encode(self, text: str, add_bos: bool = True) -> list[int]: ...
    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str: ...
    # optional: special_ids, the model's own special tokens (the text-embeddings check compares their rows)
    def stream(self) -> Any:
        """An incremental decoder: ``push(id) -> text``, ``flush() -> text``, ``reset()``."""
        ...


@runtime_checkable
class RuntimeAdapter(Protocol):
    """What the bundle runtime needs to know about the model, read from a bundle (or checkpoint) directory."""

    config: ModelConfig
    tokenizer: Tokenizer

    @property
    def embed_scale(self) -> float:
        """Factor applied to text embeddings (not to image features) before the LLM."""
        ...

    @property
    def eos_ids(self) -> set[int]: ...

    @property
    def generation_presets(self) -> GenerationPresets:
        """The decoding defaults, the checkpoint's ``generation_config.json`` applied over the model's own."""
        ...

    def load_image(self, path: str | Path) -> Any: ...
    def prepare(self, msgs: Sequence[Mapping[str, Any]], image: Any = None) -> PreparedInput: ...

    def encoder_inputs(self, prepared: PreparedInput) -> list[ImageBatch]:
        """How the image pieces of ``prepared`` go through the image encoder: the calls, each with its IR inputs
        (the runtime, validators, calibration and cost all encode through this)."""
        ...

    def merge(self, prepared: PreparedInput, embeds: np.ndarray, features: Sequence[np.ndarray]) -> np.ndarray:
        """The LLM's prefill input ``[1, T, D]``: the (scaled) text embeddings of ``prepared.input_ids`` with each
        piece's features put where the model wants them (may write into ``embeds``)."""
        ...

    def position_ids(self, prepared: PreparedInput) -> np.ndarray:
        """The prompt's position ids, int64 ``[T]`` (one row) or ``[R, T]`` (R rows, e.g. M-RoPE's 3); decoding
        continues at ``max + 1`` on every row (``ovexport.models.positions``)."""
        ...


class ReferenceLLM(Protocol):
    def __call__(self, inputs_embeds: Any, attention_mask: Any, position_ids: Any, past: Any = None) -> tuple[Any, Any]:
        """``(logits [B, T, V], past)``."""
        ...

    def embed(self, ids: Any) -> Any:
        """Scaled text embeddings of ``ids`` [B, T] (what the runtime feeds the LLM)."""
        ...


@runtime_checkable
class Reference(Protocol):
    """The PyTorch reference: computes what each IR computes, its parts loaded on first use and freed by
    ``release(reference_part)`` (``ovexport.parts.REFERENCE_PARTS``)."""

    config: ModelConfig
    tokenizer: Tokenizer

    @property
    def llm(self) -> ReferenceLLM: ...
    def release(self, part: str) -> None: ...
    def prepare(self, msgs: Sequence[Mapping[str, Any]], image: Any = None) -> PreparedInput: ...
    def text_embeddings(self, ids: Any) -> np.ndarray: ...
    def image_features(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """What the image encoder part computes for one ``ImageBatch.inputs``: ``[N, Q, D]``."""
        ...
    def image_features_of(self, prepared: PreparedInput) -> list[np.ndarray]:
        """The features of every image piece of ``prepared`` (``[Q, D]`` each, in piece order), computed as the
        original model does: only the image encoder part is needed."""
        ...
    def prefill_embeddings(self, prepared: PreparedInput, features: Sequence[np.ndarray] | None = None) -> Any:
        """``[1, T, D]``: scaled text embeddings with the image features merged in; ``features``
        (``image_features_of``) when computed already, so that the image encoder can be released first."""
        ...
    def greedy(self, prepared: PreparedInput, max_new_tokens: int,
               features: Sequence[np.ndarray] | None = None) -> tuple[list[int], list[np.ndarray]]: ...


class Publishing(Protocol):
    """Bundle extras and model-card facts."""

    PIPELINE_TAG: str
    TITLE: str

    def write_bundle_files(self, ckpt: Path, out: Path) -> None: ...
    def card_usage(self, repo_id: str) -> str: ...
    def resources(self, recipe: Any) -> dict: ...      # {"memory_gb", "disk_gb"} of its release job


@runtime_checkable
class ModelFamily(Protocol):
    """One model architecture: how to recognise, synthesise, export, validate, run and publish it."""

    name: str                          # registry key, recorded in manifests ("model_family")
    display_name: str                  # for people: the demo's title, help texts
    parts: tuple[str, ...]             # keys of ``ovexport.parts.PARTS`` it exports
    bundle_files: tuple[str, ...]      # checkpoint files copied into a bundle
    required_files: tuple[str, ...]    # checkpoint files without which it cannot be exported
    synthetic_sizes: tuple[str, ...]   # what ``synthetic://<size>`` may name for this family (first = default)
    validation_cases: ValidationCases
    entry_modules: Mapping[str, tuple[str, ...]]  # role -> the modules behind it, for fingerprints (their import
                                       # closure is hashed): "export" (part_specs), "runtime" (runtime adapter),
                                       # "reference" (PyTorch reference), "synthetic" (write_synthetic),
                                       # "publishing"; see ovexport.models.registry.CODE_ROLES
    preload: tuple[str, ...]           # modules its export/validation code imports anyway (heavy, no side
                                       # effects): imported once in the fork server isolated steps start from

    def matches(self, config: dict) -> bool:
        """Does this ``config.json`` belong to the family? Decided by the config's own keys, so that no other
        registered family claims the same config (the registry refuses a config two families claim)."""
        ...

    def image_encoder_cases(self, prepare: Callable[..., PreparedInput], rng: np.random.Generator,
                            adapter: RuntimeAdapter) -> dict[str, Mapping[str, np.ndarray]]:
        """name -> image-encoder inputs (one ``ImageBatch.inputs``) the parity check compares IR and PyTorch on:
        the sizes and branches that matter to this encoder. ``prepare``: the reference's ``prepare``."""
        ...

    def trace_size_problem(self, size: int) -> str | None:
        """Why the image encoder cannot be traced at ``size`` pixels (square), or None when it can."""
        ...

    def part_specs(self, ckpt: Path, weight_dtype: str = "fp16",
                   trace_image_size: int | None = None) -> dict[str, "PartSpec"]:
        """part key -> how to export it."""
        ...

    def write_synthetic(self, out: Path, size: str, seed: int = 0,
                        progress: Callable[[int, int], None] | None = None) -> Path: ...
    def runtime(self, bundle: Path) -> RuntimeAdapter: ...
    def reference(self, ckpt: Path, **kw: Any) -> Reference: ...
    def publishing(self) -> Publishing | None: ...

    # Optional, read with getattr by generic code (a family without them gets the default):
    #
    # ir_layout: Mapping[str, tuple[str, ...]]  part key -> its IR files, when a part is several IRs (default: the
    #     part's one ``ovexport.parts.Part.ir_file``). ``part_specs()[key]`` is then a tuple of PartSpecs.
    # image_encoder(config, infer, record=None)  the image-encoder part's IRs behind one ``encode(inputs)`` of an
    #     ``ImageBatch`` (``ovexport.runtime.image_encoder``; default: the part's one IR, fed ``inputs`` as they are).
    # genai_prepare(adapter, msgs, image) -> PreparedInput  what openvino.genai's VLMPipeline feeds the model, where
    #     it prepares the input otherwise than the model does (default: ``adapter.prepare``; docs/genai.md).
    # trace_image_size: int  the size the image encoder is traced at when the recipe leaves it out.
    # bench_cases: Mapping[str, (width, height)]  the images ``ovexport bench`` times (default: the end-to-end
    #     validation images).
    # unsupported(config) -> (what, fix) | None  for a config the family does not match but recognises as a relative
    #     it does not convert (same ``model_type``, another version), so the registry's error names that model
    #     (default: the registry's generic "not a supported model").
