"""The recipe's ``validation:`` block: how the IRs are compared with PyTorch and the gates they must pass."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

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


class ThresholdsSpec(StrictModel):
    """Numerical-parity gates, IR vs PyTorch. Every field: a number, or null = measured but not gated.
    Defaults suit an fp32 export; compressed / fp16 recipes override them."""

    text_embeddings: TextEmbeddingsThresholds = Field(default_factory=TextEmbeddingsThresholds)
    image_encoder: ImageEncoderThresholds = Field(default_factory=ImageEncoderThresholds)
    llm: LLMThresholds = Field(default_factory=LLMThresholds)
    end_to_end: EndToEndThresholds = Field(default_factory=EndToEndThresholds)


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
