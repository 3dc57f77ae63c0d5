"""What the generic runtime needs to know about MiniCPM-V-2: prompting, tokenizer, text-embedding scale, decoding."""
from __future__ import annotations

from pathlib import Path

from ovexport.models.generation_config import GenerationConfigDefaults, read_generation_config
from ovexport.models.interface import GenerationPresets, ImageBatch, PreparedInput

from . import model_inputs
from .config import MiniCPMV2Config
from .prompt import encode_chat
from .tokenizer import MiniCPMVTokenizer

# MiniCPM-V-2's ``chat`` (and the OpenVINO notebook) defaults for its two decoding modes: ``sampling=True`` and
# its default ``sampling=False``; the checkpoint's generation_config.json sets none of these keys
PRESETS = GenerationPresets(
    sampling={"do_sample": True, "top_p": 0.8, "top_k": 100, "temperature": 0.7, "repetition_penalty": 1.05},
    beam={"num_beams": 3, "repetition_penalty": 1.2},
)


class MiniCPMV2Adapter(GenerationConfigDefaults):
    presets = PRESETS

    def __init__(self, bundle: Path):
        self.config = MiniCPMV2Config.from_dir(bundle)
        self.tokenizer = MiniCPMVTokenizer.from_dir(bundle)
        self.generation_config = read_generation_config(bundle)

    @property
    def embed_scale(self) -> float:
        """Text embeddings are multiplied by ``scale_emb``; image features are not."""
        return self.config.scale_emb

    @staticmethod
    def load_image(path):
        """An image file as RGB PIL image; unreadable files raise ``InputError`` (one line)."""
        from .slicing import load_image
        return load_image(path)

    def prepare(self, msgs, image=None) -> PreparedInput:
        return encode_chat(self.tokenizer, msgs, image, config=self.config)

    def encoder_inputs(self, prepared) -> list[ImageBatch]:
        return model_inputs.encoder_inputs(prepared, int(self.config.patch_size))

    merge = staticmethod(model_inputs.merge)
    position_ids = staticmethod(model_inputs.position_ids)
