"""The parts table decides the recipe's per-part keys and the checks a bundle gets."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ovexport.parts import PART_KEYS
from ovexport.recipe.compression import CompressionSpec
from ovexport.recipe.validation import PART_THRESHOLDS, ThresholdsSpec

pytestmark = pytest.mark.unit


def test_thresholds_and_compression_have_one_key_per_part():
    assert list(ThresholdsSpec.model_fields) == [*PART_THRESHOLDS, "end_to_end"]
    assert list(CompressionSpec.model_fields) == list(PART_KEYS)
    assert set(PART_THRESHOLDS) == set(PART_KEYS)
    with pytest.raises(ValueError, match="Extra inputs"):
        ThresholdsSpec(vision={})


def test_a_family_is_checked_on_the_parts_it_has():
    from ovexport.validators.run_checks import CHECKS, checks_of

    assert {part for part, _ in CHECKS.values()} >= set(PART_KEYS)
    everything = SimpleNamespace(parts=PART_KEYS)
    assert checks_of(everything) == ["text_embeddings", "image_encoder", "llm", "end_to_end"]
    text_only = SimpleNamespace(parts=("text_embeddings", "llm"))
    assert checks_of(text_only) == ["text_embeddings", "llm", "end_to_end"]
