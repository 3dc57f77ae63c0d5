"""The description of one exportable part, written by a model package and consumed by the exporter."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class StatefulSpec:
    """How to turn explicit KV-cache inputs/outputs into OpenVINO state (with a ``beam_idx`` input)."""
    past_inputs: list[str]
    present_outputs: list[str]
    batch_dim: int = 0
    main_input: str = "inputs_embeds"      # its first dimension is the batch (beam) dimension


def as_specs(value: "PartSpec | tuple[PartSpec, ...] | list[PartSpec]") -> tuple["PartSpec", ...]:
    """A part's specs: one IR, or several (``ModelFamily.part_specs`` may give a tuple)."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@dataclass(frozen=True)
class PartSpec:
    name: str                               # the part key (ovexport.parts), e.g. "llm"
    filename: str                           # IR file name in the bundle
    load: Callable[[], "nn.Module"]           # builds the module to trace (weights loaded)
    example_input: dict[str, Any]
    input_names: list[str]                  # names of the flattened inputs, in order
    output_names: list[str]                 # names of the flattened outputs, in order
    stateful: StatefulSpec | None = None
    extra: dict[str, Any] = field(default_factory=dict)
