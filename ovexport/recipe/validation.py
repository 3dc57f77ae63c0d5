"""The recipe's ``validation:`` block: how the IRs are compared with PyTorch and the gates they must pass."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, create_model

from ovexport.parts import PART_KEYS

from .fields import Cosine, Fraction, NonNegFloat, StrictModel

InferencePrecision = Literal["f32", "bf16", "f16"]
KVCachePrecision = Literal["f32", "f16", "bf16", "u8"]


class TextEmbeddingsThresholds(StrictModel):
    max_abs_diff: Optional[NonNegFloat] = 0.0


class ImageEncoderThresholds(StrictModel):
    max_abs_diff: Optional[NonNegFloat] = 1e-4
    min_cosine: Optional[Cosine] = 0.99999


class LLMThresholds(StrictModel):
    max_abs_diff: Optional[NonNegFloat] = 1e-3
    min_cosine: Optional[Cosine] = None
    min_top1_agreement: Optional[Fraction] = 1.0
    max_kl: Optional[NonNegFloat] = None


class EndToEndThresholds(StrictModel):
    min_token_agreement: Optional[Fraction] = 1.0


# the gates of each part of the parts table (``ovexport.parts``): validation.thresholds.<part key>, in the order the
# checks run (the image encoder's before the LLM's, whose prompt holds image features)
PART_THRESHOLDS: dict[str, type[StrictModel]] = {
    "text_embeddings": TextEmbeddingsThresholds,
    "image_encoder": ImageEncoderThresholds,
    "llm": LLMThresholds,
}
_unmatched = set(PART_KEYS) ^ set(PART_THRESHOLDS)
assert not _unmatched, f"parts without thresholds, or thresholds of no part: {_unmatched}"

# one field per part of the parts table, then the whole bundle's end-to-end gate
ThresholdsSpec = create_model(
    "ThresholdsSpec", __base__=StrictModel, __module__=__name__,
    __doc__="Numerical-parity gates, IR vs PyTorch. Every field: a number, or null = measured but not gated. "
            "Defaults suit an fp32 export; compressed / fp16 recipes override them.",
    **{key: (model, Field(default_factory=model)) for key, model in PART_THRESHOLDS.items()},
    end_to_end=(EndToEndThresholds, Field(default_factory=EndToEndThresholds)),
)


class ValidationSpec(StrictModel):
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
