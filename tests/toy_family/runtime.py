"""The toy's prompt format, model inputs (its side of the runtime contract), runtime adapter and PyTorch reference."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ovexport.errors import InputError
from ovexport.models.generation_config import GenerationConfigDefaults, eos_token_ids, read_generation_config
from ovexport.models.image_batches import same_size_batches
from ovexport.models.interface import GenerationPresets, ImageBatch, PreparedInput
from ovexport.models import positions as pos

from .model import ByteTokenizer, ToyConfig, load_part

PRESETS = GenerationPresets(sampling={"do_sample": True, "top_p": 0.9, "top_k": 50, "temperature": 1.0},
                            beam={"num_beams": 2})


def to_pixels(image, size: int) -> np.ndarray:
    """RGB image -> float32 [3, size, size] in [0, 1]: the toy resizes every image to one fixed size."""
    img = image.convert("RGB").resize((size, size))
    return (np.asarray(img, np.float32).transpose(2, 0, 1) / 255.0).astype(np.float32)


@dataclass
class ToyPrepared(PreparedInput):
    """The toy's prompt: each image's features replace its run of ``<|image_pad|>`` tokens."""


def prepare(tokenizer: ByteTokenizer, config: ToyConfig, msgs: Sequence[Mapping[str, Any]], image=None) -> ToyPrepared:
    """ChatML turns, the image at the start of the first user turn, then ``<|im_start|>assistant\\n``."""
    if not msgs or msgs[-1].get("role") != "user":
        raise InputError("the conversation must end with a user message", fix="ask a question")
    text = ""
    for i, m in enumerate(msgs):
        content = str(m.get("content", ""))
        if i == 0 and image is not None:
            content = "<|vision_start|>" + "<|image_pad|>" * config.image_tokens + "<|vision_end|>" + content
        text += f"<|im_start|>{m.get('role', 'user')}\n{content}<|im_end|>\n"
    text += "<|im_start|>assistant\n"
    ids = np.asarray(tokenizer.encode(text), np.int64)
    pads = int((ids == tokenizer.image_pad_id).sum())
    if pads != (config.image_tokens if image is not None else 0):
        raise InputError("the prompt's image tokens do not match its image", fix="do not write <|image_pad|> in text")
    pixels = [to_pixels(image, config.image_size)] if image is not None else []
    return ToyPrepared(input_ids=ids, pixel_values=pixels, prompt=text)


def encoder_inputs(prepared: ToyPrepared) -> list[ImageBatch]:
    return same_size_batches(prepared.pixel_values, lambda px: {"pixel_values": np.ascontiguousarray(px, np.float32)})


def merge(prepared: ToyPrepared, embeds: np.ndarray, features: Sequence[np.ndarray]) -> np.ndarray:
    where = np.flatnonzero(np.asarray(prepared.input_ids) == ByteTokenizer.image_pad_id)
    if len(features):
        embeds[0, where] = np.concatenate(list(features))
    return embeds


def position_ids(prepared: ToyPrepared, config: ToyConfig) -> np.ndarray:
    """[3, T] M-RoPE-style: a text token advances all rows; an image's tokens share the temporal position and
    spread over its merged grid's rows (height) and columns (width); the text after it starts past the largest."""
    ids = np.asarray(prepared.input_ids)
    side = config.grid // config.merge
    out = np.zeros((3, len(ids)), np.int64)
    cur, k = 0, 0
    while k < len(ids):
        if ids[k] == ByteTokenizer.image_pad_id:
            r, c = np.divmod(np.arange(side * side), side)
            out[:, k:k + side * side] = np.stack([np.full(side * side, cur), cur + r, cur + c])
            cur = int(out[:, k:k + side * side].max()) + 1
            k += side * side
        else:
            out[:, k] = cur
            cur += 1
            k += 1
    return out


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

    def prepare(self, msgs, image=None) -> ToyPrepared:
        return prepare(self.tokenizer, self.config, msgs, image)

    encoder_inputs = staticmethod(encoder_inputs)
    merge = staticmethod(merge)

    def position_ids(self, prepared: ToyPrepared) -> np.ndarray:
        return position_ids(prepared, self.config)


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
            self._image_encoder = (load_part(self.ckpt, "visual", self.dtype),
                                   load_part(self.ckpt, "projector", self.dtype))
        return self._image_encoder

    def release(self, part: str) -> None:
        setattr(self, f"_{part}", None)

    def prepare(self, msgs, image=None) -> ToyPrepared:
        return prepare(self.tokenizer, self.config, msgs, image)

    @torch.no_grad()
    def text_embeddings(self, ids) -> np.ndarray:
        return self.llm.embed_tokens(torch.as_tensor(np.asarray(ids), dtype=torch.int64)).float().numpy()

    @torch.no_grad()
    def image_features(self, inputs) -> np.ndarray:
        visual, projector = self.image_encoder
        px = torch.as_tensor(np.asarray(inputs["pixel_values"])).to(self.dtype)
        return projector(visual(px)).float().numpy()

    def image_features_of(self, prepared: ToyPrepared) -> list[np.ndarray]:
        return [self.image_features(b.inputs)[j] for b in encoder_inputs(prepared) for j in range(len(b.pieces))]

    @torch.no_grad()
    def prefill_embeddings(self, prepared: ToyPrepared, features=None) -> torch.Tensor:
        ids = torch.as_tensor(prepared.input_ids, dtype=torch.int64)
        emb = self.llm.embed(ids[None]).numpy().copy()
        feats = self.image_features_of(prepared) if features is None else features
        return torch.from_numpy(merge(prepared, emb, feats))

    @torch.no_grad()
    def greedy(self, prepared: ToyPrepared, max_new_tokens: int, features=None) -> tuple[list[int], list[np.ndarray]]:
        emb = self.prefill_embeddings(prepared, features)
        t = emb.shape[1]
        prompt_pos = position_ids(prepared, self.config)
        nxt = pos.next_position(prompt_pos)
        logits, past = self.llm(emb, torch.ones(1, t, dtype=torch.int64), torch.as_tensor(pos.batched(prompt_pos)))
        tokens: list[int] = []
        step_logits = [logits[0, -1].float().numpy()]
        eos = {self.tokenizer.eos_id} | eos_token_ids(read_generation_config(self.ckpt))
        for _ in range(max_new_tokens):
            tok = int(step_logits[-1].argmax())
            tokens.append(tok)
            if tok in eos or len(tokens) == max_new_tokens:
                break
            k = len(tokens) - 1
            logits, past = self.llm(self.llm.embed(torch.tensor([[tok]])), torch.ones(1, t + k + 1, dtype=torch.int64),
                                    torch.as_tensor(pos.step(nxt + k, 1, 3)), past)
            step_logits.append(logits[0, -1].float().numpy())
        return tokens, step_logits
