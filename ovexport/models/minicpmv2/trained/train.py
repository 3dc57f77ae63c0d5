"""Train our own MiniCPM-V-2 (``model.py``), at a tiny size, on the generated task of ``task.py``.

Every training example goes through ``encode_chat``, the function the runtime adapter uses, so the model
learns on exactly the token ids, image bounds, slices and pixels that the exported bundle will see.
The answer follows ``<AI>`` as ``tokenizer.encode(answer)`` + ``</s>``; only those tokens carry loss.

Deterministic for a seed on one machine: the data stream is seeded, torch is seeded, and the run uses a
fixed number of threads (restored afterwards).
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MiniCPMV2Config
from ..llm import causal_mask, rope_cos_sin
from ..model import MiniCPMV2
from ..prompt import encode_chat
from ..resampler import sincos_2d
from ..tokenizer import MiniCPMVTokenizer
from . import task

# What the tiny trained checkpoint changes from the tiny random one (synth.TINY_OVERRIDES): 16 image
# queries and 112-pixel slices keep prompts and vision cheap enough to train in minutes on 2 cores.
TRAINED_OVERRIDES: dict = {"query_num": 16, "scale_resolution": 112}


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 2000
    batch_size: int = 8
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    # one thread: on these tiny tensors a second thread gained nothing, and on a loaded machine (load 15 on
    # 2 cores, measured) OpenMP's barriers made a 2-thread step 15x slower than a 1-thread one
    threads: int = 1
    heldout_questions: int = 150


@dataclass
class Example:
    ids: list[int]               # prompt + answer + </s>
    n_prompt: int
    bounds: np.ndarray           # [n_images, 2]
    pixels: list[np.ndarray]     # [3, H, W] per image


def trained_config(seed: int) -> dict:
    from ..synth import synthetic_config
    cfg = synthetic_config("tiny", seed)
    cfg.update(TRAINED_OVERRIDES)
    cfg["_name_or_path"] = "ovexport/synthetic-minicpm-v-2-tiny-trained"
    cfg["ovexport_synthetic"] = {"size": "tiny-trained", "seed": seed}
    return cfg


def make_example(tok: MiniCPMVTokenizer, config: MiniCPMV2Config, image, question: str, answer: str) -> Example:
    prepared = encode_chat(tok, [{"role": "user", "content": question}], image, config=config)
    prompt = [int(i) for i in prepared.input_ids]
    target = tok.encode(answer, add_bos=False) + [tok.eos_id]
    return Example(prompt + target, len(prompt), prepared.image_bounds, prepared.pixel_values)


# Initial scales of what the LLM reads (measured, BENCHMARKS.md "Tiny trained model"): MiniCPM multiplies text
# embeddings by scale_emb (12) but not the resampler's output. With both near 1 rms at the start, the model
# learnt each question's answer prior from the text and then stayed there (loss plateau at the prior, image
# ignored); starting the image features several times louder than the text lets it learn to look.
IMAGE_FEATURE_RMS = 3.0      # resampler output (ln_post -> proj) at initialisation
TEXT_EMBED_RMS = 0.36        # embed_tokens x scale_emb at initialisation


def init_weights(model: MiniCPMV2, config: MiniCPMV2Config) -> None:
    """Module defaults, plus what the original initialises itself: the resampler's queries, its fixed
    2-D sin-cos query table and projection, and small embeddings/lm_head. The resampler projection and the
    token embeddings are scaled so image features start ``IMAGE_FEATURE_RMS`` and scaled text
    ``TEXT_EMBED_RMS``."""
    r = model.resampler
    with torch.no_grad():
        r.query.normal_(0.0, 0.02)
        side = math.isqrt(config.query_num)
        if side * side == config.query_num:
            r.pos_embed.copy_(sincos_2d(config.hidden_size, side, side))
        else:
            r.pos_embed.normal_(0.0, 0.02)
        r.proj.copy_(torch.randn_like(r.proj) * IMAGE_FEATURE_RMS * config.hidden_size ** -0.5)
        model.llm.model.embed_tokens.weight.normal_(0.0, TEXT_EMBED_RMS / config.scale_emb)
        model.llm.lm_head.weight.normal_(0.0, 0.02)


def _encode_images(model: MiniCPMV2, pixels: list[np.ndarray]) -> list[torch.Tensor]:
    """Image features [Q, D] of every image, encoding the images of one size together."""
    p = model.config.patch_size
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, px in enumerate(pixels):
        by_size.setdefault(px.shape[1:], []).append(i)
    out: list[torch.Tensor | None] = [None] * len(pixels)
    for (h, w), idx in by_size.items():
        x = torch.from_numpy(np.stack([pixels[i] for i in idx]))
        feats = model.image_encoder(x, torch.tensor([-(-h // p), -(-w // p)]))
        for k, i in enumerate(idx):
            out[i] = feats[k]
    return out  # type: ignore[return-value]


def _decoder_hidden(model: MiniCPMV2, emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The LLM's final hidden states [B, L, D] (``MiniCPMLM.forward`` without ``lm_head``: training needs
    logits at the few answer positions only, and ``lm_head`` over every position was the costliest matmul)."""
    llm, c = model.llm, model.config
    L = emb.shape[1]
    cos, sin = rope_cos_sin(torch.arange(L)[None].expand(emb.shape[0], -1), c.head_dim, c.rope_theta)
    attn_mask = causal_mask(mask, L, 0)
    x = emb
    for layer in llm.model.layers:
        x, _ = layer(x, cos, sin, attn_mask, None)
    return llm.model.norm(x)


def batch_hidden(model: MiniCPMV2, batch: list[Example]) -> torch.Tensor:
    """Final hidden states [B, L, D] of a right-padded batch."""
    L = max(len(e.ids) for e in batch)
    ids = torch.zeros(len(batch), L, dtype=torch.int64)
    mask = torch.zeros(len(batch), L, dtype=torch.int64)
    for b, e in enumerate(batch):
        ids[b, :len(e.ids)] = torch.tensor(e.ids)
        mask[b, :len(e.ids)] = 1
    emb = model.llm.embed(ids)
    feats = _encode_images(model, [px for e in batch for px in e.pixels])
    b_idx, p_idx = [], []
    for b, e in enumerate(batch):
        for s, t in e.bounds:
            b_idx.append(torch.full((int(t - s),), b))
            p_idx.append(torch.arange(int(s), int(t)))
    if feats:
        emb = emb.index_put((torch.cat(b_idx), torch.cat(p_idx)), torch.cat(feats).to(emb.dtype))
    return _decoder_hidden(model, emb, mask)


def logits_at(model: MiniCPMV2, hidden: torch.Tensor) -> torch.Tensor:
    return model.llm.lm_head(hidden / model.config.logit_scale)


def loss_of(model: MiniCPMV2, batch: list[Example]) -> torch.Tensor:
    hidden = batch_hidden(model, batch)
    rows, cols, targets = [], [], []
    for b, e in enumerate(batch):
        for t in range(e.n_prompt, len(e.ids)):
            rows.append(b)
            cols.append(t - 1)
            targets.append(e.ids[t])
    picked = logits_at(model, hidden[torch.tensor(rows), torch.tensor(cols)])
    return F.cross_entropy(picked.float(), torch.tensor(targets))


@torch.no_grad()
def greedy_answer(model: MiniCPMV2, tok: MiniCPMVTokenizer, ex: Example, max_new_tokens: int = 6) -> str:
    """Greedy answer of one example's prompt (no cache: answers are a few tokens)."""
    e = Example(list(ex.ids[:ex.n_prompt]), ex.n_prompt, ex.bounds, ex.pixels)
    new: list[int] = []
    for _ in range(max_new_tokens):
        tok_id = int(logits_at(model, batch_hidden(model, [e])[0, -1]).argmax())
        if tok_id == tok.eos_id:
            break
        new.append(tok_id)
        e.ids.append(tok_id)
    return tok.decode(new)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def normalise(text: str) -> str:
    """What exact match ignores: case and whitespace."""
    return " ".join(text.lower().split())


def train(config_dict: dict, tok: MiniCPMVTokenizer, seed: int, exclude: set[str],
          settings: TrainSettings = TrainSettings(),
          progress: Callable[[int, int, float], None] | None = None) -> tuple[MiniCPMV2, dict]:
    """The trained model and {"steps", "final_loss"} (no wall time or anything else that depends on the machine's
    load: the report is part of the checkpoint, whose bytes depend on the seed only). ``progress(step, steps, loss)``."""
    config = MiniCPMV2Config.from_dict(config_dict)
    # enable_grad: whatever an earlier caller in this process switched off globally
    with torch_threads(settings.threads), torch.enable_grad():
        torch.manual_seed(seed)
        model = MiniCPMV2(config)
        init_weights(model, config)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": settings.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=settings.lr, betas=(0.9, 0.98))

        def lr_at(step: int) -> float:
            if step < settings.warmup:
                return settings.lr * (step + 1) / settings.warmup
            t = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
            return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

        stream = task.training_stream(seed, exclude)
        ema = None
        for step in range(settings.steps):
            batch = [make_example(tok, config, s.image, s.question, s.answer)
                     for s in (next(stream) for _ in range(settings.batch_size))]
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss = loss_of(model, batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            value = float(loss.detach())
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            if progress:
                progress(step + 1, settings.steps, ema)
        model.eval()
    return model, {"steps": settings.steps, "final_loss": None if ema is None else round(ema, 4)}


def evaluate(model: MiniCPMV2, tok: MiniCPMVTokenizer, samples: list[task.Sample], threads: int = 1) -> float:
    """Share of ``samples`` answered exactly (case and whitespace aside) by greedy decoding in PyTorch."""
    config = model.config
    with torch_threads(threads):
        ok = sum(normalise(greedy_answer(model, tok, make_example(tok, config, s.image, s.question, s.answer)))
                 == normalise(s.answer) for s in samples)
    return ok / max(1, len(samples))
