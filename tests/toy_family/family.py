"""Registers the toy family (import this module, or name it in ``$OVEXPORT_FAMILIES``)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ovexport.bundle.layout import IMAGE_ENCODER, LANGUAGE_MODEL, TEXT_EMBEDDINGS
from ovexport.exporter.spec import PartSpec, StatefulSpec
from ovexport.models.interface import ValidationCases
from ovexport.models.registry import register_family

from .model import MODEL_TYPE, WEIGHTS, ToyConfig, load_part, write_checkpoint
from .runtime import ToyAdapter, ToyReference

HERE = Path(__file__).resolve().parent


class _LMForExport(nn.Module):
    """KV cache as explicit flat inputs/outputs, for tracing."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, inputs_embeds, attention_mask, position_ids, past_key_values):
        logits, presents = self.lm(inputs_embeds, attention_mask, position_ids, list(past_key_values))
        return (logits, *[t for kv in presents for t in kv])


class ToyFamily:
    name = "toyvlm"
    display_name = "Toy VLM"
    parts = ("text_embeddings", "llm", "image_encoder")
    bundle_files = ("config.json", "generation_config.json")
    required_files = ("config.json", WEIGHTS)
    synthetic_sizes = ("toy",)
    synth_sources = (str(HERE / "model.py"),)
    preload = ()
    # the export code is this module's part_specs (hashed as the registration module)
    entry_modules = {"export": (f"{__package__}.model",), "runtime": (f"{__package__}.runtime",),
                     "reference": (f"{__package__}.runtime",), "synthetic": (f"{__package__}.model",)}
    trace_image_size = 28                        # the recipe's default trace size: a 2x2 patch grid
    validation_cases = ValidationCases(
        image_sizes={"28x28": (28, 28), "14x42": (14, 42), "56x28": (56, 28)},
        sliced_image=None,                       # the toy resizes, it does not slice
        slice_batch_fallback=(28, 28),
        end_to_end={"64x48": (64, 48, None), "30x90": (30, 90, None)},
    )

    def matches(self, config: dict) -> bool:
        return config.get("model_type") == MODEL_TYPE

    def trace_size_problem(self, size: int) -> str | None:
        p = ToyConfig.patch_size
        return None if size >= p and size % p == 0 else f"must be a multiple of {p}, got {size}"

    def part_specs(self, ckpt: Path, weight_dtype: str = "fp16", trace_image_size: int = 448) -> dict[str, PartSpec]:
        c = ToyConfig.from_dir(ckpt)
        layers = range(c.num_layers)
        past = [f"past_key_values.{i}.{kind}" for i in layers for kind in ("key", "value")]
        present = [f"present.{i}.{kind}" for i in layers for kind in ("key", "value")]
        kv = (1, c.num_heads, 2, c.head_dim)
        grid = trace_image_size // c.patch_size
        return {
            "text_embeddings": PartSpec(
                name="text_embeddings", filename=TEXT_EMBEDDINGS, load=lambda: load_part(ckpt, "text_embeddings"),
                example_input={"input_ids": torch.tensor([[1, 7, 8]])}, input_names=["input_ids"],
                output_names=["inputs_embeds"]),
            "llm": PartSpec(
                name="llm", filename=LANGUAGE_MODEL, load=lambda: _LMForExport(load_part(ckpt, "llm")),
                example_input={"inputs_embeds": torch.randn(1, 3, c.hidden_size),
                               "attention_mask": torch.ones(1, 5, dtype=torch.int64),
                               "position_ids": torch.arange(2, 5)[None],
                               "past_key_values": tuple((torch.randn(kv), torch.randn(kv)) for _ in layers)},
                input_names=["inputs_embeds", "attention_mask", "position_ids", *past],
                output_names=["logits", *present],
                stateful=StatefulSpec(past_inputs=past, present_outputs=present)),
            "image_encoder": PartSpec(
                name="image_encoder", filename=IMAGE_ENCODER, load=lambda: load_part(ckpt, "vision"),
                example_input={"pixel_values": torch.randn(1, 3, trace_image_size, trace_image_size),
                               "tgt_size": torch.tensor([grid, grid])},
                input_names=["pixel_values", "tgt_size"], output_names=["image_features"]),
        }

    def write_synthetic(self, out: Path, size: str = "toy", seed: int = 0, progress=None) -> Path:
        write_checkpoint(out, seed=seed)
        return out

    runtime = staticmethod(ToyAdapter)
    reference = staticmethod(ToyReference)

    def publishing(self):
        return None          # no bundle extras, no model card


FAMILY = register_family(ToyFamily())
