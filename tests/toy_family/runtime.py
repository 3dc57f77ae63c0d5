"""The toy's prompt format, runtime adapter and PyTorch reference."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ovexport.errors import InputError
from ovexport.models.generation_config import GenerationConfigDefaults, eos_token_ids, read_generation_config
from ovexport.models.interface import GenerationPresets, PreparedInput

from .model import ByteTokenizer, ToyConfig, load_part

PRESETS = GenerationPresets(sampling={"do_sample": True, "top_p": 0.9, "top_k": 50, "temperature": 1.0},
                            beam={"num_beams": 2})


def to_pixels(image, size: int) -> np.ndarray:
    """RGB image -> float32 [3, size, size] in [-1, 1]: the toy does not slice, it resizes."""
    img = image.convert("RGB").resize((size, size))
    return (np.asarray(img, np.float32).transpose(2, 0, 1) / 127.5 - 1.0).astype(np.float32)


def prepare(tokenizer: ByteTokenizer, config: ToyConfig, msgs: Sequence[Mapping[str, Any]], image=None) -> PreparedInput:
    """``USER: <image>....</image>question`` / ``ASSISTANT: answer`` turns, the image in the first user turn."""
    if not msgs or msgs[-1].get("role") != "user":
        raise InputError("the conversation must end with a user message", fix="ask a question")
    text = ""
    for i, m in enumerate(msgs):
        content = str(m.get("content", ""))
        if i == 0 and image is not None:
            content = "<image>" + "?" * config.query_num + "</image>" + content
        text += ("USER: " if m.get("role") == "user" else "ASSISTANT: ") + content + "\n"
    text += "ASSISTANT:"
    ids = np.asarray(tokenizer.encode(text), np.int64)
    starts = np.flatnonzero(ids == tokenizer.im_start_id) + 1
    ends = np.flatnonzero(ids == tokenizer.im_end_id)
    if len(starts) != (image is not None) or len(ends) != len(starts):
        raise InputError("the prompt's <image> tags do not pair up", fix="do not write <image> in message text")
    bounds = np.stack([starts, ends], 1).astype(np.int64) if len(starts) else np.zeros((0, 2), np.int64)
    pixels = [to_pixels(image, config.image_size)] if image is not None else []
    return PreparedInput(input_ids=ids, image_bounds=bounds, pixel_values=pixels, prompt=text,
                         patch_size=config.patch_size)


class ToyAdapter(GenerationConfigDefaults):
    presets = PRESETS
    tokenizer = ByteTokenizer()

    def __init__(self, bundle: Path):
        self.config = ToyConfig.from_dir(bundle)
        self.generation_config = read_generation_config(bundle)
        self.embed_scale = self.config.embed_scale

    @staticmethod
    def load_image(path):
        from PIL import Image
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except OSError as e:
            raise InputError(f"image {path} is unreadable ({e})", fix="pass a readable image") from None

    def prepare(self, msgs, image=None) -> PreparedInput:
        return prepare(self.tokenizer, self.config, msgs, image)


class ToyReference:
    """The toy in PyTorch (fp32), parts loaded on first use."""

    def __init__(self, ckpt: Path, dtype: torch.dtype = torch.float32):
        self.ckpt = Path(ckpt)
        self.config = ToyConfig.from_dir(ckpt)
        self.tokenizer = ByteTokenizer()
        self.dtype = dtype
        self._llm = None
        self._image_encoder = None

    @property
    def llm(self):
        if self._llm is None:
            self._llm = load_part(self.ckpt, "llm", self.dtype)
        return self._llm

    @property
    def image_encoder(self):
        if self._image_encoder is None:
            self._image_encoder = load_part(self.ckpt, "vision", self.dtype)
        return self._image_encoder

    def release(self, part: str) -> None:
        setattr(self, f"_{part}", None)

    def prepare(self, msgs, image=None) -> PreparedInput:
        return prepare(self.tokenizer, self.config, msgs, image)

    @torch.no_grad()
    def text_embeddings(self, ids) -> np.ndarray:
        return self.llm.embed_tokens(torch.as_tensor(np.asarray(ids), dtype=torch.int64)).float().numpy()

    @torch.no_grad()
    def image_features(self, pixel_values: np.ndarray) -> np.ndarray:
        px = torch.as_tensor(pixel_values).to(self.dtype)
        p = self.config.patch_size
        tgt = torch.tensor([-(-px.shape[-2] // p), -(-px.shape[-1] // p)])
        return self.image_encoder(px, tgt).float().numpy()

    @torch.no_grad()
    def prefill_embeddings(self, prepared: PreparedInput) -> torch.Tensor:
        ids = torch.as_tensor(prepared.input_ids, dtype=torch.int64)
        emb = self.llm.embed(ids[None])[0].clone()
        for (s, e), px in zip(prepared.image_bounds, prepared.pixel_values):
            emb[int(s):int(e)] = torch.as_tensor(self.image_features(px[None])[0])
        return emb[None]

    @torch.no_grad()
    def greedy(self, prepared: PreparedInput, max_new_tokens: int) -> tuple[list[int], list[np.ndarray]]:
        emb = self.prefill_embeddings(prepared)
        t = emb.shape[1]
        logits, past = self.llm(emb, torch.ones(1, t, dtype=torch.int64), torch.arange(t)[None])
        tokens: list[int] = []
        step_logits = [logits[0, -1].float().numpy()]
        eos = {self.tokenizer.eos_id} | eos_token_ids(read_generation_config(self.ckpt))
        for _ in range(max_new_tokens):
            tok = int(step_logits[-1].argmax())
            tokens.append(tok)
            if tok in eos or len(tokens) == max_new_tokens:
                break
            pos = t + len(tokens) - 1
            logits, past = self.llm(self.llm.embed(torch.tensor([[tok]])), torch.ones(1, pos + 1, dtype=torch.int64),
                                    torch.tensor([[pos]]), past)
            step_logits.append(logits[0, -1].float().numpy())
        return tokens, step_logits
