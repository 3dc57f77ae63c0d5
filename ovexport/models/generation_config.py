"""A checkpoint's ``generation_config.json`` (the Hugging Face file) applied over a family's decoding presets.

The family states how its model is meant to be decoded (e.g. the original ``chat`` method's arguments); the
checkpoint's file, when it sets a decoding key, wins, as it does for ``transformers``' ``generate``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .interface import GenerationPresets

FILE = "generation_config.json"
# keys of generation_config.json that shape sampling / beam search, as GenerationConfig fields
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "repetition_penalty")
BEAM_KEYS = ("num_beams", "repetition_penalty", "length_penalty")


def read_generation_config(directory: Path) -> dict[str, Any]:
    """The directory's ``generation_config.json``, or ``{}`` when it has none (or it is unreadable)."""
    f = Path(directory) / FILE
    try:
        data = json.loads(f.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def apply_generation_config(defaults: GenerationPresets, gen: dict[str, Any]) -> GenerationPresets:
    """``defaults`` with the decoding keys ``gen`` sets (a ``num_beams`` of 1 does not turn beam search off)."""
    sampling = {**defaults.sampling, **{k: gen[k] for k in SAMPLING_KEYS if gen.get(k) is not None}}
    beam = {**defaults.beam, **{k: gen[k] for k in BEAM_KEYS if gen.get(k) is not None}}
    if int(beam.get("num_beams", 1)) < 2:
        beam["num_beams"] = defaults.beam.get("num_beams", 2)
    return GenerationPresets(sampling=sampling, beam=beam)


def eos_token_ids(gen: dict[str, Any]) -> set[int]:
    """``eos_token_id`` of a generation config (an id or a list of ids) as a set."""
    eos = gen.get("eos_token_id")
    if eos is None:
        return set()
    return {int(e) for e in (eos if isinstance(eos, list) else [eos])}


class GenerationConfigDefaults:
    """For runtime adapters: ``eos_ids`` and ``generation_presets`` from ``generation_config`` (the directory's
    file, read with ``read_generation_config``) over the family's ``presets``."""

    presets: GenerationPresets
    generation_config: dict[str, Any]
    tokenizer: Any

    @property
    def eos_ids(self) -> set[int]:
        return {self.tokenizer.eos_id} | eos_token_ids(self.generation_config)

    @property
    def generation_presets(self) -> GenerationPresets:
        return apply_generation_config(self.presets, self.generation_config)
