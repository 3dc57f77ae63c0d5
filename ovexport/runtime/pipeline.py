"""``Pipeline.load(bundle).chat(...)``: the Python API the CLI and the web app share."""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ovexport.bundle.layout import MANIFEST
from ovexport.errors import BundleError
from ovexport.models.registry import family_for, get_family

from .generation import GenerationConfig, greedy_decode
from .ov_models import BundleModels


@dataclass
class ChatResult:
    prompt_token_ids: list[int]
    token_ids: list[int]
    text: str
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"prompt_token_ids": self.prompt_token_ids, "token_ids": self.token_ids, "text": self.text}


class Pipeline:
    def __init__(self, bundle: Path, models: BundleModels, adapter):
        self.bundle = bundle
        self.models = models
        self.adapter = adapter
        self.tokenizer = adapter.tokenizer

    @classmethod
    def load(cls, bundle: str | Path, device: str = "CPU", ov_config: Mapping[str, str] | None = None) -> "Pipeline":
        bundle = Path(bundle)
        if not bundle.is_dir():
            raise BundleError(f"bundle {bundle} does not exist", fix="pass a directory written by `ovexport run`")
        manifest = bundle / MANIFEST
        family = None
        if manifest.is_file():
            name = json.loads(manifest.read_text()).get("model_family")
            family = get_family(name) if name else None
        family = family or family_for(bundle)
        return cls(bundle, BundleModels(bundle, device, ov_config), family.runtime(bundle))

    # pieces --------------------------------------------------------------------------------------
    def embed_text(self, ids: np.ndarray) -> np.ndarray:
        return self.models.embed(ids) * np.float32(self.adapter.embed_scale)

    def encode_images(self, pixel_values: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Features of each image; same-size images (the slices of a grid) go through in one call."""
        p = self.adapter.config.patch_size
        out: list[np.ndarray | None] = [None] * len(pixel_values)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, px in enumerate(pixel_values):
            groups.setdefault(tuple(px.shape[1:]), []).append(i)
        for (h, w), idx in groups.items():
            feats = self.models.encode_images(np.stack([pixel_values[i] for i in idx]), (-(-h // p), -(-w // p)))
            for j, i in enumerate(idx):
                out[i] = feats[j]
        return out  # type: ignore[return-value]

    def prefill_embeddings(self, prepared, image_features: Sequence[np.ndarray] | None = None) -> np.ndarray:
        emb = self.embed_text(prepared.input_ids[None])
        if len(prepared.image_bounds):
            feats = image_features if image_features is not None else self.encode_images(prepared.pixel_values)
            for (s, e), f in zip(prepared.image_bounds, feats):
                emb[0, int(s):int(e)] = f
        return emb

    # chat ----------------------------------------------------------------------------------------
    def chat(self, prompt: str | Sequence[Mapping[str, str]], image=None, config: GenerationConfig | None = None,
             on_text: Callable[[str], None] | None = None) -> ChatResult:
        config = config or GenerationConfig()
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        prepared = self.adapter.prepare(msgs, image)
        prefill = self.prefill_embeddings(prepared)
        stream = self.tokenizer.stream() if on_text else None

        def on_token(tok: int) -> None:
            if stream is not None and tok not in self.adapter.eos_ids:
                text = stream.push(tok)
                if text:
                    on_text(text)

        tokens = greedy_decode(self.models, prefill, self.embed_text, self.adapter.eos_ids,
                               config.max_new_tokens, on_token)
        if stream is not None:
            rest = stream.flush()
            if rest:
                on_text(rest)
        return ChatResult(prompt_token_ids=[int(i) for i in prepared.input_ids], token_ids=tokens,
                          text=self.tokenizer.decode(tokens, skip_special_tokens=True))
