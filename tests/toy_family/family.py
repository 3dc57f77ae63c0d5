"""Registers the toy family (import this module, or name it in ``$OVEXPORT_FAMILIES``): a fixed-size image, a
vision IR and a projector IR, 3-row positions, a ChatML prompt (see model.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ovexport.bundle.layout import LANGUAGE_MODEL, TEXT_EMBEDDINGS
from ovexport.exporter.spec import PartSpec, StatefulSpec
from ovexport.models.interface import ValidationCases
from ovexport.models.registry import register_family
from ovexport.synthetic.images import random_pixels, synthetic_image

from .model import MODEL_TYPE, WEIGHTS, ToyConfig, load_part, write_checkpoint
from .runtime import ToyAdapter, ToyReference

# the image encoder part as two IRs (optimum-intel's names for a LLaVA-style vision tower and projector)
VISION = "openvino_vision_embeddings_model.xml"
PROJECTOR = "openvino_multi_modal_projector_model.xml"
PIXEL_RANGE = (0.0, 1.0)


class _LMForExport(nn.Module):
    """KV cache as explicit flat inputs/outputs, for tracing."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, inputs_embeds, attention_mask, position_ids, past_key_values):
        logits, presents = self.lm(inputs_embeds, attention_mask, position_ids, list(past_key_values))
        return (logits, *[t for kv in presents for t in kv])


class ToyImageEncoder:
    """The vision IR then the projector IR: ``encode({"pixel_values": [N, 3, 32, 32]}) -> [N, 4, hidden]``."""

    def __init__(self, infer, record=None):
        self.infer, self.record = infer, record

    def _run(self, xml: str, inputs: dict) -> np.ndarray:
        if self.record is not None:
            self.record(xml, inputs)
        return self.infer(xml, inputs)

    def encode(self, inputs) -> np.ndarray:
        patches = self._run(VISION, {"pixel_values": np.ascontiguousarray(inputs["pixel_values"], np.float32)})
        return self._run(PROJECTOR, {"patch_embeds": patches})


class ToyFamily:
    name = "toyvlm"
    display_name = "Toy VLM"
    parts = ("text_embeddings", "llm", "image_encoder")
    ir_layout = {"image_encoder": (VISION, PROJECTOR)}
    bundle_files = ("config.json", "generation_config.json")
    required_files = ("config.json", WEIGHTS)
    synthetic_sizes = ("toy",)
    preload = ()
    # the export code is this module's part_specs (hashed as the registration module)
    entry_modules = {"export": (f"{__package__}.model",), "runtime": (f"{__package__}.runtime",),
                     "reference": (f"{__package__}.runtime",), "synthetic": (f"{__package__}.model",)}
    trace_image_size = ToyConfig.image_size      # the recipe's default trace size: the one size it takes
    validation_cases = ValidationCases(
        end_to_end={"64x48": (64, 48, None), "30x90": (30, 90, None)},
        prompt_image=(40, 30),
        pixel_range=PIXEL_RANGE,
    )

    def matches(self, config: dict) -> bool:
        return config.get("model_type") == MODEL_TYPE

    def image_encoder_cases(self, prepare, rng, adapter) -> dict:
        size = adapter.config.image_size
        msgs = [{"role": "user", "content": "What is it?"}]
        cases = {"random": random_pixels(rng, 1, size, size, PIXEL_RANGE),
                 "resized_50x20": prepare(msgs, synthetic_image(rng, 50, 20)).pixel_values[0][None],
                 "batch3": random_pixels(rng, 3, size, size, PIXEL_RANGE)}
        return {name: {"pixel_values": px} for name, px in cases.items()}

    def image_encoder(self, config, infer, record=None):
        return ToyImageEncoder(infer, record)

    def trace_size_problem(self, size: int) -> str | None:
        fixed = ToyConfig.image_size
        return None if size == fixed else f"the toy takes {fixed}x{fixed} images only, got {size}"

    def part_specs(self, ckpt: Path, weight_dtype: str = "fp16", trace_image_size: int = 32) -> dict:
        c = ToyConfig.from_dir(ckpt)
        layers = range(c.num_layers)
        past = [f"past_key_values.{i}.{kind}" for i in layers for kind in ("key", "value")]
        present = [f"present.{i}.{kind}" for i in layers for kind in ("key", "value")]
        kv = (1, c.num_heads, 2, c.head_dim)
        return {
            "text_embeddings": PartSpec(
                name="text_embeddings", filename=TEXT_EMBEDDINGS, load=lambda: load_part(ckpt, "text_embeddings"),
                example_input={"input_ids": torch.tensor([[1, 7, 8]])}, input_names=["input_ids"],
                output_names=["inputs_embeds"]),
            "llm": PartSpec(
                name="llm", filename=LANGUAGE_MODEL, load=lambda: _LMForExport(load_part(ckpt, "llm")),
                example_input={"inputs_embeds": torch.randn(1, 3, c.hidden_size),
                               "attention_mask": torch.ones(1, 5, dtype=torch.int64),
                               "position_ids": torch.arange(2, 5).expand(3, 1, 3).contiguous(),
                               "past_key_values": tuple((torch.randn(kv), torch.randn(kv)) for _ in layers)},
                input_names=["inputs_embeds", "attention_mask", "position_ids", *past],
                output_names=["logits", *present],
                stateful=StatefulSpec(past_inputs=past, present_outputs=present)),
            "image_encoder": (
                PartSpec(name="image_encoder", filename=VISION, load=lambda: load_part(ckpt, "visual"),
                         example_input={"pixel_values": torch.rand(1, 3, c.image_size, c.image_size)},
                         input_names=["pixel_values"], output_names=["patch_embeds"]),
                PartSpec(name="image_encoder", filename=PROJECTOR, load=lambda: load_part(ckpt, "projector"),
                         example_input={"patch_embeds": torch.randn(1, c.grid * c.grid, c.vision_width)},
                         input_names=["patch_embeds"], output_names=["image_features"]),
            ),
        }

    def write_synthetic(self, out: Path, size: str = "toy", seed: int = 0, progress=None) -> Path:
        write_checkpoint(out, seed=seed)
        return out

    runtime = staticmethod(ToyAdapter)
    reference = staticmethod(ToyReference)

    def publishing(self):
        return None          # no bundle extras, no model card


FAMILY = register_family(ToyFamily())
