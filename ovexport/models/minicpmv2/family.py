"""Registers MiniCPM-V-2 with the model-family registry: every fact about it that generic code needs."""
from __future__ import annotations

from pathlib import Path

from ovexport.bundle.layout import RESAMPLER, VISION_EMBEDDINGS
from ovexport.models.registry import ENV_FAMILIES, register_family
from ovexport.parts import PART_KEYS

from .validation_cases import VALIDATION_CASES

BUNDLE_FILES = ("config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
                "special_tokens_map.json")

PATCH_SIZE = 14
# The SigLIP position embedding is 27x27 (patch 14 at 378 px). Tracing at 378 px makes the grid exactly 27x27,
# so the traced graph skips the position-embedding resize and only works at 378 px.
POSITION_GRID = 27
# the image encoder is traced at this size unless a recipe says otherwise: a 32x32 patch grid, the slicer's
# source size, so the traced graph resizes the position embedding as it must at every other size
TRACE_SIZE = 448

# what `ovexport bench` times (name -> (width, height)): one image the slicer leaves whole (the trace size) and one
# it cuts in a 3x2 grid (source + 6 slices, the same-size slices encoded in one call)
BENCH_CASES = {"448x448": (448, 448), "1344x896": (1344, 896)}

MODEL_TYPE = "minicpmv"
VISION_ENCODER = "vit_so400m_patch14_siglip"   # timm's name of V-2's SigLIP tower (``..._384.webli``)


def not_minicpm_v2(config: dict) -> list[str]:
    """How a ``model_type: minicpmv`` config.json differs from MiniCPM-V-2's (empty: it is V-2). V-2.5 and V-2.6
    share the model type and the ``MiniCPMV`` architecture, but carry a ``version`` key and describe their vision
    tower as a transformers ``vision_config`` (SigLIP / Idefics2, with its own ``model_type``); V-2 names a timm
    tower in ``vision_encoder`` (its ``vision_config``, only in synthetic checkpoints, holds timm keyword arguments).
    ``query_num`` is V-2's own parameter (64 in the real checkpoint, 16 in the trained tiny fixture), not a tell."""
    differences = []
    if "version" in config:
        differences.append(f"version {config['version']!r}")
    encoder = config.get("vision_encoder")
    if not str(encoder or "").startswith(VISION_ENCODER):
        differences.append(f"vision_encoder {encoder!r}, not {VISION_ENCODER}*")
    vision = config.get("vision_config")
    if isinstance(vision, dict) and "model_type" in vision:
        differences.append(f"a {vision['model_type']!r} vision_config")
    return differences


class MiniCPMV2Family:
    name = "minicpmv2"
    display_name = "MiniCPM-V-2"
    parts = PART_KEYS
    # the image encoder as the two IRs openvino.genai's VLMPipeline opens for a "minicpmv" folder (genai_vision.py)
    ir_layout = {"image_encoder": (VISION_EMBEDDINGS, RESAMPLER)}
    bundle_files = BUNDLE_FILES
    required_files = ("config.json", "tokenizer.model")
    # tiny: random weights, a few MB; full: the real shapes (a trained tiny fixture is a synthetic source of its
    # own, registered by ovexport.fixtures)
    synthetic_sizes = ("tiny", "full")
    validation_cases = VALIDATION_CASES
    bench_cases = BENCH_CASES
    trace_image_size = TRACE_SIZE
    # the modules behind each method below (fingerprints hash their import closure)
    entry_modules = {
        "export": (f"{__package__}.export", f"{__package__}.config"),
        "runtime": (f"{__package__}.runtime_adapter",),
        "reference": (f"{__package__}.torch_reference",),
        "synthetic": (f"{__package__}.synth",),
        "publishing": (f"{__package__}.publishing",),
    }
    # each step process would otherwise import these itself: timm builds the vision tower, and building a
    # module on the meta device imports torch._dynamo (~3 s each); the rest is the family's own heavy code
    preload = ("timm", "torch._dynamo", "ovexport.models.minicpmv2.export",
               "ovexport.models.minicpmv2.torch_reference", "ovexport.models.minicpmv2.runtime_adapter")

    def matches(self, config: dict) -> bool:
        return config.get("model_type") == MODEL_TYPE and not not_minicpm_v2(config)

    def unsupported(self, config: dict) -> tuple[str, str] | None:
        if config.get("model_type") != MODEL_TYPE:
            return None
        differences = not_minicpm_v2(config)
        if not differences:
            return None
        fix = ("convert openbmb/MiniCPM-V-2 (a config.json without a 'version' key), or register a family for this "
               f"model with ${ENV_FAMILIES}")
        if "version" in config:
            return f"MiniCPM-V-{config['version']} is not supported yet (ovexport supports MiniCPM-V-2)", fix
        return (f"a model_type {MODEL_TYPE!r} config.json that is not MiniCPM-V-2 ({'; '.join(differences)}): "
                "not supported yet (ovexport supports MiniCPM-V-2)", fix)

    def image_encoder_cases(self, prepare, rng, adapter) -> dict:
        from .validation_cases import image_encoder_cases
        return image_encoder_cases(prepare, rng, int(adapter.config.patch_size))

    def trace_size_problem(self, size: int) -> str | None:
        if size < PATCH_SIZE or size % PATCH_SIZE:
            return f"must be a multiple of the patch size {PATCH_SIZE} (e.g. 448), got {size}"
        if size == POSITION_GRID * PATCH_SIZE:
            return (f"{size} gives a {POSITION_GRID}x{POSITION_GRID} patch grid, where the image encoder skips the "
                    "position-embedding resize, so the traced graph would not work at other sizes; use e.g. 448")
        return None

    def part_specs(self, ckpt: Path, weight_dtype: str = "fp16", trace_image_size: int = TRACE_SIZE) -> dict:
        from ovexport.exporter.convert import torch_dtype

        from . import export
        from .config import MiniCPMV2Config

        config = MiniCPMV2Config.from_dir(ckpt)
        # the checkpoint is read in the export dtype directly: no fp32 copy of a bf16 checkpoint
        dtype = torch_dtype(weight_dtype)
        return {
            "text_embeddings": export.text_embeddings_spec(ckpt, config, dtype),
            "llm": export.language_model_spec(ckpt, config, dtype),
            "image_encoder": export.genai_image_encoder_specs(ckpt, config, dtype, trace_image_size),
        }

    def genai_prepare(self, adapter, msgs, image):
        """What openvino.genai's VLMPipeline feeds the model: its slicer's sizes, 2.6's slice layout
        (``genai_inputs.genai_prepare``); ``adapter``: anything with the model's ``tokenizer`` and ``config``."""
        from .genai_inputs import genai_prepare
        return genai_prepare(adapter.tokenizer, adapter.config, msgs, image)

    def image_encoder(self, config, infer, record=None):
        """The two image IRs as one encoder, fed what openvino.genai feeds them (``genai_inputs``)."""
        from .genai_inputs import GenaiImageEncoder
        return GenaiImageEncoder(infer, int(config.patch_size), int(config.hidden_size), record)

    def write_synthetic(self, out: Path, size: str = "tiny", seed: int = 0, progress=None) -> Path:
        from .synth import write_synthetic_checkpoint
        return write_synthetic_checkpoint(out, size=size, seed=seed, progress=progress)

    def runtime(self, bundle: Path):
        from .runtime_adapter import MiniCPMV2Adapter
        return MiniCPMV2Adapter(bundle)

    def reference(self, ckpt: Path, **kw):
        from .torch_reference import TorchReference
        return TorchReference(ckpt, **kw)

    def publishing(self):
        from . import publishing
        return publishing


FAMILY = register_family(MiniCPMV2Family())
