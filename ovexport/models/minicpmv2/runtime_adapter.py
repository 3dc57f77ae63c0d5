"""What the generic runtime needs to know about MiniCPM-V-2: prompting, tokenizer, text-embedding scale."""
from __future__ import annotations

import json
from pathlib import Path

from .config import MiniCPMV2Config
from .prompt import PreparedInput, encode_chat
from .tokenizer import MiniCPMVTokenizer


class MiniCPMV2Adapter:
    def __init__(self, bundle: Path):
        self.config = MiniCPMV2Config.from_dir(bundle)
        self.tokenizer = MiniCPMVTokenizer.from_dir(bundle)
        gen = Path(bundle) / "generation_config.json"
        self.generation_config = json.loads(gen.read_text()) if gen.is_file() else {}

    @property
    def embed_scale(self) -> float:
        """Text embeddings are multiplied by ``scale_emb``; image features are not."""
        return self.config.scale_emb

    @property
    def eos_ids(self) -> set[int]:
        return {self.tokenizer.eos_id}

    @staticmethod
    def load_image(path):
        """An image file as RGB PIL image; unreadable files raise ``InputError`` (one line)."""
        from .slicing import load_image
        return load_image(path)

    def prepare(self, msgs, image=None) -> PreparedInput:
        return encode_chat(self.tokenizer, msgs, image, config=self.config)
