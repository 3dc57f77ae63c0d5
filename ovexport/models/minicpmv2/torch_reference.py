"""The PyTorch reference: our MiniCPM-V-2 run eagerly, used by validators and parity tests."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from . import model_inputs
from .config import MiniCPMV2Config
from .fp32_compute import fp32_compute
from .parts import load_image_encoder, load_llm, load_text_embeddings
from ovexport.models.interface import PreparedInput

from .prompt import encode_chat
from .tokenizer import MiniCPMVTokenizer


_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class TorchReference:
    """Loads each part on first use; ``release(part)`` frees it so parts can be checked one at a time.

    Computation is fp32. Weights stay in the checkpoint's dtype (bf16 for the real model) and big
    layers upcast per call (see ``fp32_compute``): the same numbers as an fp32 model at half the memory.
    """

    def __init__(self, ckpt: Path, dtype: torch.dtype = torch.float32):
        self.ckpt = Path(ckpt)
        self.config = MiniCPMV2Config.from_dir(ckpt)
        self.tokenizer = MiniCPMVTokenizer.from_dir(ckpt)
        self.dtype = dtype                       # dtype of the computation
        self.weight_dtype = _DTYPES.get(self.config.torch_dtype, torch.float32) if dtype == torch.float32 else dtype
        self._llm = None
        self._image_encoder = None
        self._text_embeddings = None

    def _load(self, loader):
        if self.dtype != torch.float32:
            return loader(self.ckpt, self.config, self.weight_dtype)
        # fp32 arithmetic on 16-bit weights: the big weights stay views of the checkpoint, each layer's pages given
        # back after it ran (fp32_compute): the full-size LLM is not 5.9 GB of the validate step's memory
        return fp32_compute(loader(self.ckpt, self.config, self.weight_dtype, mapped=True))

    # parts -------------------------------------------------------------------------------------
    @property
    def llm(self):
        if self._llm is None:
            self._llm = self._load(load_llm)
        return self._llm

    @property
    def image_encoder(self):
        if self._image_encoder is None:
            self._image_encoder = self._load(load_image_encoder)
        return self._image_encoder

    def release(self, part: str) -> None:
        """Free a reference part (``ovexport.parts.REFERENCE_PARTS``: "llm" or "image_encoder")."""
        setattr(self, f"_{part}", None)
        if part == "llm":
            self._text_embeddings = None

    def _embedding_table(self):
        """The LLM's input embedding table: the loaded LLM's own, else the table alone (0.6 GB of the full-size
        model instead of its 5.5 GB LLM), kept until ``release("llm")``."""
        if self._llm is not None:
            return self._llm.model.embed_tokens
        if self._text_embeddings is None:
            self._text_embeddings = self._load(load_text_embeddings).embed_tokens
        return self._text_embeddings

    # computations ------------------------------------------------------------------------------
    def prepare(self, msgs, image=None) -> PreparedInput:
        return encode_chat(self.tokenizer, msgs, image, config=self.config)

    @torch.no_grad()
    def text_embeddings(self, ids) -> np.ndarray:
        """Unscaled embeddings, what the text-embeddings IR computes (the LLM is not loaded for it)."""
        t = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
        return self._embedding_table()(t).float().numpy()

    @torch.no_grad()
    def image_features(self, inputs) -> np.ndarray:
        """One encoder call's inputs (``pixel_values`` [N, 3, H, W], ``tgt_size``) -> [N, Q, D], one image at a
        time as the original does."""
        px = torch.as_tensor(np.asarray(inputs["pixel_values"])).to(self.dtype)
        tgt = torch.as_tensor(np.asarray(inputs["tgt_size"]), dtype=torch.int64)
        return torch.cat([self.image_encoder(px[i:i + 1], tgt) for i in range(px.shape[0])]).float().numpy()

    def image_features_of(self, prepared: PreparedInput) -> list[np.ndarray]:
        """[Q, D] features of each image piece of ``prepared``, each piece encoded alone."""
        p = int(self.config.patch_size)
        return [self.image_features(model_inputs.encoder_batch_inputs(px[None], p))[0]
                for px in prepared.pixel_values]

    @torch.no_grad()
    def prefill_embeddings(self, prepared: PreparedInput, features: Sequence[np.ndarray] | None = None) -> torch.Tensor:
        """[1, T, D]: scaled text embeddings with image features written between <image> and </image>
        (``features``: ``image_features_of(prepared)`` computed already, so that the encoder can go first)."""
        if features is None:
            features = self.image_features_of(prepared)
        ids = torch.as_tensor(prepared.input_ids, dtype=torch.int64)
        emb = self._embedding_table()(ids[None])[0] * self.config.scale_emb   # = llm.embed(ids), a new tensor
        for (s, e), feats in zip(prepared.image_bounds, features):
            emb[int(s):int(e)] = torch.as_tensor(feats).to(emb.dtype)
        return emb[None]

    @torch.no_grad()
    def greedy(self, prepared: PreparedInput, max_new_tokens: int,
               features: Sequence[np.ndarray] | None = None) -> tuple[list[int], list[np.ndarray]]:
        """Greedy tokens and the next-token logits of each step (prefill's last position first); only the last
        position's logits are computed."""
        emb = self.prefill_embeddings(prepared, features)
        t = emb.shape[1]
        mask = torch.ones(1, t, dtype=torch.int64)
        logits, past = self.llm(emb, mask, torch.arange(t)[None], last_only=True)
        tokens: list[int] = []
        step_logits = [logits[0, -1].float().numpy()]
        for _ in range(max_new_tokens):
            tok = int(step_logits[-1].argmax())
            tokens.append(tok)
            if tok == self.tokenizer.eos_id or len(tokens) == max_new_tokens:
                break
            pos = t + len(tokens) - 1
            mask = torch.ones(1, pos + 1, dtype=torch.int64)
            emb = self.llm.embed(torch.tensor([[tok]]))
            logits, past = self.llm(emb, mask, torch.tensor([[pos]]), past)
            step_logits.append(logits[0, -1].float().numpy())
        return tokens, step_logits
