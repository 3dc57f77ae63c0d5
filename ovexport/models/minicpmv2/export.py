"""What to export of MiniCPM-V-2, part by part: tracing wrappers, example inputs, input/output names.

The generic exporter (``ovexport.exporter``) turns each :class:`PartSpec` into an OpenVINO IR.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ovexport.bundle.layout import IMAGE_ENCODER, LANGUAGE_MODEL, RESAMPLER, TEXT_EMBEDDINGS, VISION_EMBEDDINGS
from ovexport.exporter.spec import PartSpec, StatefulSpec

from .config import MiniCPMV2Config
from .llm import MiniCPMLM
from .parts import load_image_encoder, load_llm, load_resampler, load_text_embeddings



class LanguageModelForExport(nn.Module):
    """Flat signature for tracing: KV cache as explicit inputs and outputs, logits in fp32."""

    def __init__(self, llm: MiniCPMLM):
        super().__init__()
        self.llm = llm

    def forward(self, inputs_embeds, attention_mask, position_ids, past_key_values):
        logits, presents = self.llm(inputs_embeds, attention_mask, position_ids, list(past_key_values))
        flat = [t for kv in presents for t in kv]
        return (logits.float(), *flat)


def kv_names(num_layers: int) -> tuple[list[str], list[str]]:
    ins = [f"past_key_values.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]
    outs = [f"present.{i}.{kind}" for i in range(num_layers) for kind in ("key", "value")]
    return ins, outs


def text_embeddings_spec(ckpt: Path, config: MiniCPMV2Config, dtype: torch.dtype) -> PartSpec:
    return PartSpec(
        name="text_embeddings", filename=TEXT_EMBEDDINGS,
        load=lambda: load_text_embeddings(ckpt, config, dtype),
        example_input={"input_ids": torch.tensor([[1, 101, 0, 102, 5]], dtype=torch.int64)},
        input_names=["input_ids"], output_names=["inputs_embeds"],
    )


def language_model_spec(ckpt: Path, config: MiniCPMV2Config, dtype: torch.dtype) -> PartSpec:
    b, past, t = 1, 2, 3
    kv_shape = (b, config.num_key_value_heads, past, config.head_dim)
    float_dtype = torch.float32
    example = {
        "inputs_embeds": torch.randn(b, t, config.hidden_size, dtype=float_dtype),
        "attention_mask": torch.ones(b, past + t, dtype=torch.int64),
        "position_ids": torch.arange(past, past + t, dtype=torch.int64)[None],
        "past_key_values": tuple((torch.randn(kv_shape, dtype=float_dtype), torch.randn(kv_shape, dtype=float_dtype))
                                 for _ in range(config.num_hidden_layers)),
    }
    past_names, present_names = kv_names(config.num_hidden_layers)
    return PartSpec(
        name="llm", filename=LANGUAGE_MODEL,
        load=lambda: LanguageModelForExport(load_llm(ckpt, config, dtype)),
        example_input=example,
        input_names=["inputs_embeds", "attention_mask", "position_ids", *past_names],
        output_names=["logits", *present_names],
        stateful=StatefulSpec(past_inputs=past_names, present_outputs=present_names, batch_dim=0,
                              main_input="inputs_embeds"),
    )


def image_encoder_spec(ckpt: Path, config: MiniCPMV2Config, dtype: torch.dtype, trace_size: int = 448) -> PartSpec:
    """The image encoder as ONE IR (pixels + ``tgt_size``): what the published notebook exports; bundles hold the
    two genai IRs (``genai_image_encoder_specs``); benchmarks/bench_export.py times the notebook's way with it."""
    if trace_size == 27 * config.patch_size:
        raise ValueError("the image encoder must not be traced at a 27x27 grid: timm skips the position "
                         "resize there and tracing would freeze that branch")
    grid = -(-trace_size // config.patch_size)
    return PartSpec(
        name="image_encoder", filename=IMAGE_ENCODER,
        load=lambda: load_image_encoder(ckpt, config, dtype),
        example_input={"pixel_values": torch.randn(1, 3, trace_size, trace_size),
                       "tgt_size": torch.tensor([grid, grid], dtype=torch.int64)},
        input_names=["pixel_values", "tgt_size"], output_names=["image_features"],
    )


def _genai_trace_inputs(config: MiniCPMV2Config, vision_dim: int, trace_size: int) -> tuple[dict, dict]:
    """Example inputs of the two genai-layout IRs: a padded batch of two grids (trace_size^2 and a wide one), so
    the traced graph keeps every dimension dynamic (a batch of 1 would freeze the batch into reshapes) and takes
    the masked, padded path genai uses."""
    from .genai_inputs import patch_strip, sincos_2d, vision_position_ids

    p = config.patch_size
    g = -(-trace_size // p)
    grids = [(g, g), (max(1, g // 2), g + 3)]
    length = max(h * w for h, w in grids)
    pixels = torch.zeros(2, 3, p, length * p)
    mask = torch.zeros(2, 1, length)
    pos = torch.zeros(2, length, dtype=torch.int64)
    table = torch.zeros(length, 2, config.hidden_size)
    padding = torch.ones(2, length)
    for i, (h, w) in enumerate(grids):
        strip = patch_strip(torch.randn(1, 3, h * p, w * p).numpy(), p)[0]
        pixels[i, :, :, :strip.shape[-1]] = torch.from_numpy(strip)
        mask[i, 0, :h * w] = 1
        pos[i, :h * w] = torch.from_numpy(vision_position_ids(h, w))
        table[:h * w, i] = torch.from_numpy(sincos_2d(config.hidden_size, h, w))
        padding[i, :h * w] = 0
    vision = {"pixel_values": pixels, "patch_attention_mask": mask, "position_ids": pos}
    resampler = {"image_feature": torch.randn(2, length, vision_dim), "pos_embed": table,
                 "key_padding_mask": padding}
    return vision, resampler


def genai_image_encoder_specs(ckpt: Path, config: MiniCPMV2Config, dtype: torch.dtype,
                              trace_size: int = 448) -> tuple[PartSpec, PartSpec]:
    """The image encoder as openvino.genai's two IRs (``genai_vision``): vision embeddings, then resampler."""
    from .genai_vision import GenaiResampler, VisionEmbeddings
    from .vision import vision_width

    with torch.device("meta"):
        from .vision import build_vision_tower
        width = vision_width(build_vision_tower(config))
    vision_in, resampler_in = _genai_trace_inputs(config, width, trace_size)
    return (
        PartSpec(name="image_encoder", filename=VISION_EMBEDDINGS,
                 load=lambda: VisionEmbeddings(load_image_encoder(ckpt, config, dtype).vpm),
                 example_input=vision_in, input_names=list(vision_in), output_names=["last_hidden_state"]),
        PartSpec(name="image_encoder", filename=RESAMPLER,
                 load=lambda: GenaiResampler(load_resampler(ckpt, config, dtype)),
                 example_input=resampler_in, input_names=list(resampler_in), output_names=["resampled"]),
    )
