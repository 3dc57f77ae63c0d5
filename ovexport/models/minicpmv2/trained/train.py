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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import MiniCPMV2Config
from ..llm import causal_mask, rope_cos_sin
from ..model import MiniCPMV2
from ..prompt import AI, USER, encode_chat
from ..resampler import sincos_1d
from ..tokenizer import MiniCPMVTokenizer
from ..vision import vision_features, vision_width
from . import task
from .dense import DenseProbe, encoder_image_targets

# What the tiny trained checkpoint changes from the tiny random one (synth.TINY_OVERRIDES): 16 image
# queries and 112-pixel slices keep prompts and vision cheap enough to train in minutes on 2 cores.
TRAINED_OVERRIDES: dict = {"query_num": 16, "scale_resolution": 112}


@dataclass(frozen=True)
class TrainSettings:
    # the default: 4000 vision-pretraining steps with the pooled patch probe, then 1400 full steps (vision at 0.5x),
    # from a PCA patch embedding (BENCHMARKS.md "fourth pass" and "fifth pass"), chosen on the validation stream:
    # 92.0 % mean over seeds 0 and 1 against 86.8 % for 3000 pretraining steps and vision 0.3x; held-out accuracy
    # over seeds 0-2: docs/investigations/2026-12-05-trained-fixture-settings.md
    steps: int = 1400
    batch_size: int = 8
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    # one thread: on these tiny tensors a second thread gained nothing, and on a loaded machine (load 15 on
    # 2 cores, measured) OpenMP's barriers made a 2-thread step 15x slower than a 1-thread one
    threads: int = 1
    heldout_questions: int = 150
    sliced_share: float = 0.5    # share of training images at sliced sizes (a sliced image is 3-7 encoder images)
    probe_weight: float = 1.0    # weight of the image probe's loss (``ImageProbe``) beside the answers' loss
    # vision tower and resampler learn at lr x this: at the full lr their first steps scramble the regions the
    # initialisation lays out (vision-only probe, 300 steps: position at chance with 1x, 76 % with 0.1x)
    # (0.5: after the pretraining below, which has laid the regions out and taught the tower the shapes)
    vision_lr_scale: float = 0.5
    # the resampler's attention (query/key projections, ln_kv, queries: where each image token looks) at lr x this
    regions_lr_scale: float = 0.1
    # vision pretraining: before the full steps, the vision tower, resampler and image probe alone learn on the
    # probe's loss over whole-image (overview) encodings only: no LLM, no slices, so a step costs a fraction
    pretrain_steps: int = 4000
    pretrain_batch: int = 16
    pretrain_lr: float = 2e-3            # its peak lr (probe heads; vision x pretrain_vision_lr_scale)
    pretrain_vision_lr_scale: float = 1.0
    # weight of the dense per-patch loss (``dense.DenseProbe``: what covers each patch of every encoder image) beside
    # the answers' loss, in pretraining and the full steps; 0 = off (and the run is exactly the run without it)
    dense_weight: float = 0.0
    # weight of the pooled patch probe's loss (``PooledProbe``: per question kind, a linear classifier of the mean and
    # max of the tower's patch features of the whole image) beside the answers' loss, in pretraining and the full
    # steps; 0 = off (and the run is exactly the run without it)
    pool_weight: float = 1.0
    # the patch embedding (``vpm.patch_embed.proj``, SigLIP's 14-px conv) at initialisation (``init_patch_embed``):
    # "default" (timm's), "pca" (whitened principal components of 14x14x3 patches of the training stream's first
    # ``patch_init_scenes`` scenes) or "dct" (low-frequency 2-D DCT filters of luminance and two colour-opponent
    # channels); its output channels start at ``patch_init_rms``
    patch_init: str = "pca"
    patch_init_scenes: int = 128
    patch_init_rms: float = 0.3
    # the ViT blocks' residual branches (``attn.proj``, ``mlp.fc2``) start at this x timm's scale (1.0: unchanged;
    # small: the blocks start near identity, so the patch features reach the resampler intact)
    vit_residual_scale: float = 0.1
    # the patch embedding learns at lr x this (None: as the rest of the vision tower, ``vision_lr_scale``; 0: frozen)
    patch_lr_scale: float | None = 0.05


@dataclass
class Example:
    ids: list[int]               # prompt + answer + </s> (+ further turns: <用户> question <AI> answer </s>)
    n_prompt: int                # length of the first turn's prompt (what the runtime sends)
    bounds: np.ndarray           # [n_images, 2]
    pixels: list[np.ndarray]     # [3, H, W] per image
    targets: list[int]           # positions t whose token ids[t] carries loss (answers and their </s>)
    labels: dict[str, int]       # question kind -> index of the answer in task.ANSWERS (the image probe's targets)
    parts: list[np.ndarray] | None = None   # per image, what covers each patch (``dense``; None: not asked for)


def trained_config(seed: int) -> dict:
    from ..synth import synthetic_config
    cfg = synthetic_config("tiny", seed)
    cfg.update(TRAINED_OVERRIDES)
    cfg["_name_or_path"] = "ovexport/synthetic-minicpm-v-2-tiny-trained"
    cfg["ovexport_synthetic"] = {"size": "tiny-trained", "seed": seed}
    return cfg


def make_example(tok: MiniCPMVTokenizer, config: MiniCPMV2Config, image,
                 qa: Sequence[tuple[str, str]], scene_key: str | None = None) -> Example:
    """One conversation about ``image``: the first question exactly as the runtime encodes it (``encode_chat``),
    each further question as a new user turn; every answer is followed by ``</s>``, and only answers carry loss.
    All questions of one image share its vision pass. With ``scene_key``, the example carries the patch targets of
    its encoder images (``dense``)."""
    (q0, _), *rest = qa
    prepared = encode_chat(tok, [{"role": "user", "content": q0}], image, config=config)
    ids = [int(i) for i in prepared.input_ids]
    n_prompt = len(ids)
    targets: list[int] = []
    labels = {task.KIND_OF[q]: task.ANSWERS[task.KIND_OF[q]].index(a) for q, a in qa}
    for k, (question, answer) in enumerate(qa):
        if k:
            ids += tok.encode(USER + question + AI, add_bos=False)
        answer_ids = tok.encode(answer, add_bos=False) + [tok.eos_id]
        targets += range(len(ids), len(ids) + len(answer_ids))
        ids += answer_ids
    parts = None if scene_key is None else encoder_image_targets(
        scene_key, image.size, config.scale_resolution, config.patch_size, config.max_slice_nums)
    return Example(ids, n_prompt, prepared.image_bounds, prepared.pixel_values, targets, labels, parts)


# Initial scales of what the LLM reads (measured, BENCHMARKS.md "Tiny trained model"): MiniCPM multiplies text
# embeddings by scale_emb (12) but not the resampler's output. With both near 1 rms at the start, the model
# learnt each question's answer prior from the text and then stayed there (loss plateau at the prior, image
# ignored); starting the image features several times louder than the text lets it learn to look.
IMAGE_FEATURE_RMS = 3.0      # resampler output (ln_post -> proj) at initialisation
TEXT_EMBED_RMS = 0.36        # embed_tokens x scale_emb at initialisation


# The resampler's queries start looking at one region of the image each (measured, BENCHMARKS.md): with the
# default initialisation all queries attend uniformly (entropy 4.14 of 4.16 over 64 patches), so every image
# feature is the same average of the patches - colour survives that, position, shape, count and words do not.
RESAMPLER_SHARPNESS = 1.0    # attention logit per unit of sin-cos similarity between query and patch position
# the vision tower's learnt position table starts as loud as the patch embeddings (timm: 0.02 against 0.28 rms),
# so patch features say where they are from the start
VIT_POS_RMS = 0.3
RESAMPLER_CONTENT = 0.5      # ln_kv gain: patch content against the position table in the attention logits


def _query_positions(dim: int, side: int, grid: int) -> torch.Tensor:
    """2-D sin-cos table [side*side, dim] of query centres spread over a ``grid`` x ``grid`` patch grid (the
    layout of ``sincos_2d``: first half w, second half h)."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5) * grid / side - 0.5
    ys = c[:, None].expand(side, side).reshape(-1)
    xs = c[None, :].expand(side, side).reshape(-1)
    return torch.cat([sincos_1d(dim // 2, xs), sincos_1d(dim // 2, ys)], dim=1)


def init_weights(model: MiniCPMV2, config: MiniCPMV2Config) -> None:
    """Module defaults, plus what the original initialises itself (the resampler's queries, its fixed query
    position table and projection, small embeddings/lm_head), with three choices of ours:
    - the query table holds positions spread over the image's patch grid, and the attention's query/key
      projections start as scaled identities, so query i starts attending to region i of the image;
    - the resampler projection and the token embeddings are scaled so image features start
      ``IMAGE_FEATURE_RMS`` and scaled text ``TEXT_EMBED_RMS``."""
    r = model.resampler
    d = config.hidden_size
    with torch.no_grad():
        model.vpm.pos_embed.normal_(0.0, VIT_POS_RMS)
        r.query.normal_(0.0, 0.02)
        side = math.isqrt(config.query_num)
        grid = config.scale_resolution // config.patch_size
        if side * side == config.query_num:
            r.pos_embed.copy_(_query_positions(d, side, grid))
        else:
            r.pos_embed.normal_(0.0, 0.02)
        r.ln_q.weight.fill_(0.1)                      # the learnt queries start small beside the position table
        r.ln_kv.weight.fill_(RESAMPLER_CONTENT)
        a = (RESAMPLER_SHARPNESS * d ** 0.5) ** 0.5   # q.k / sqrt(d) = sharpness x (table . table)
        r.attn.in_proj_weight[:d].copy_(torch.eye(d) * a)
        r.attn.in_proj_weight[d:2 * d].copy_(torch.eye(d) * a)
        r.proj.copy_(torch.randn_like(r.proj) * IMAGE_FEATURE_RMS * d ** -0.5)
        model.llm.model.embed_tokens.weight.normal_(0.0, TEXT_EMBED_RMS / config.scale_emb)
        model.llm.lm_head.weight.normal_(0.0, 0.02)


def _patches(pixels: list[np.ndarray], p: int, stride: int) -> np.ndarray:
    """Every p x p patch (top-left corners ``stride`` apart) of each [3, H, W] image, as rows [N, 3*p*p] in the
    conv weight's (channel, row, column) order."""
    rows = []
    for px in pixels:
        win = np.lib.stride_tricks.sliding_window_view(px, (p, p), axis=(1, 2))[:, ::stride, ::stride]  # [3,h,w,p,p]
        rows.append(win.transpose(1, 2, 0, 3, 4).reshape(-1, 3 * p * p))
    return np.concatenate(rows).astype(np.float64)


def _dct_filters(p: int, n: int) -> np.ndarray:
    """``n`` filters [n, 3, p, p]: 2-D DCT-II bases of lowest frequency (u + v, then u) on luminance (the RGB mean),
    the first few also on two colour-opponent channels (R - G, (R + G)/2 - B): 3/4 of ``n`` on luminance."""
    k = np.arange(p)
    basis = [np.cos(np.pi * (k + 0.5) * f / p) for f in range(p)]
    freqs = sorted(((u, v) for u in range(p) for v in range(p)), key=lambda uv: (uv[0] + uv[1], uv[0]))
    colours = [np.array([1.0, 1.0, 1.0]) / 3, np.array([1.0, -1.0, 0.0]), np.array([0.5, 0.5, -1.0])]
    n_lum = n - 2 * ((n // 4) // 2)
    out = []
    for c, count in ((0, n_lum), (1, (n - n_lum) // 2), (2, n - n_lum - (n - n_lum) // 2)):
        for u, v in freqs[:count]:
            out.append(colours[c][:, None, None] * np.outer(basis[u], basis[v])[None])
    return np.stack(out)


def init_patch_embed(model: MiniCPMV2, config: MiniCPMV2Config, settings: "TrainSettings", seed: int,
                     exclude: set[str]) -> None:
    """``settings.patch_init`` ("pca" or "dct") for the patch embedding, from the patches of the overview images of
    the first ``settings.patch_init_scenes`` scenes of the seed's training stream (held-out images excluded, as in
    training): each output channel is one filter, centred and scaled to ``settings.patch_init_rms`` over those
    patches; then the ViT blocks' residual branches are scaled by ``settings.vit_residual_scale``."""
    conv = model.vpm.patch_embed.proj
    width, p = conv.out_channels, config.patch_size
    if settings.patch_init != "default":
        stream = task.training_stream(seed, exclude, settings.sliced_share)
        pixels = [_overview_pixels(config, next(stream).image) for _ in range(settings.patch_init_scenes)]
        x = _patches(pixels, p, p // 2)
        mean = x.mean(0)
        if settings.patch_init == "pca":
            cov = np.cov(x - mean, rowvar=False)
            vals, vecs = np.linalg.eigh(cov)
            order = np.argsort(vals)[::-1][:width]
            # whitened: every component at unit variance; the floor keeps the weakest (noise) ones from blowing up
            w = vecs[:, order].T / np.sqrt(np.maximum(vals[order], 1e-3 * vals[order[0]]))[:, None]
            w *= np.sign(w.sum(1, keepdims=True) + 1e-12)        # eigenvector signs: a fixed convention
        elif settings.patch_init == "dct":
            w = _dct_filters(p, width).reshape(width, -1)
        else:
            raise ValueError(f"unknown patch_init {settings.patch_init!r}")
        y = (x - mean) @ w.T
        w = w * (settings.patch_init_rms / np.maximum(y.std(0), 1e-8))[:, None]
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w.reshape(conv.weight.shape)).to(conv.weight.dtype))
            conv.bias.copy_(torch.from_numpy(-(w @ mean)).to(conv.bias.dtype))
    if settings.vit_residual_scale != 1.0:
        with torch.no_grad():
            for block in model.vpm.blocks:
                for lin in (block.attn.proj, block.mlp.fc2):
                    lin.weight.mul_(settings.vit_residual_scale)
                    lin.bias.mul_(settings.vit_residual_scale)


def _encode_images_and_patches(model: MiniCPMV2,
                               pixels: list[np.ndarray]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Image features [Q, D] and the vision tower's patch features [h*w, width] of every image, encoding the
    images of one size together (``ImageEncoder.forward``, keeping what the tower gives the resampler)."""
    p = model.config.patch_size
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, px in enumerate(pixels):
        by_size.setdefault(px.shape[1:], []).append(i)
    out: list[torch.Tensor | None] = [None] * len(pixels)
    patches: list[torch.Tensor | None] = [None] * len(pixels)
    for (h, w), idx in by_size.items():
        x = torch.from_numpy(np.stack([pixels[i] for i in idx]))
        grid = torch.tensor([-(-h // p), -(-w // p)])
        patch_feats = vision_features(model.vpm, x)
        feats = model.resampler(patch_feats, grid[0], grid[1])
        for k, i in enumerate(idx):
            out[i], patches[i] = feats[k], patch_feats[k]
    return out, patches  # type: ignore[return-value]


def _encode_images(model: MiniCPMV2, pixels: list[np.ndarray]) -> list[torch.Tensor]:
    """Image features [Q, D] of every image, encoding the images of one size together."""
    return _encode_images_and_patches(model, pixels)[0]


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


def batch_forward(model: MiniCPMV2, batch: list[Example]
                  ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Final hidden states [B, L, D] of a right-padded batch, the features [Q, D] of every image (examples'
    images in order) and the vision tower's patch features [h*w, width] of every image."""
    L = max(len(e.ids) for e in batch)
    ids = torch.zeros(len(batch), L, dtype=torch.int64)
    mask = torch.zeros(len(batch), L, dtype=torch.int64)
    for b, e in enumerate(batch):
        ids[b, :len(e.ids)] = torch.tensor(e.ids)
        mask[b, :len(e.ids)] = 1
    emb = model.llm.embed(ids)
    feats, patches = _encode_images_and_patches(model, [px for e in batch for px in e.pixels])
    b_idx, p_idx = [], []
    for b, e in enumerate(batch):
        for s, t in e.bounds:
            b_idx.append(torch.full((int(t - s),), b))
            p_idx.append(torch.arange(int(s), int(t)))
    if feats:
        emb = emb.index_put((torch.cat(b_idx), torch.cat(p_idx)), torch.cat(feats).to(emb.dtype))
    return _decoder_hidden(model, emb, mask), feats, patches


def batch_hidden(model: MiniCPMV2, batch: list[Example]) -> torch.Tensor:
    return batch_forward(model, batch)[0]


def logits_at(model: MiniCPMV2, hidden: torch.Tensor) -> torch.Tensor:
    return model.llm.lm_head(hidden / model.config.logit_scale)


class ImageProbe(nn.Module):
    """Training aid, not part of the checkpoint: per question kind, a learnt query that attends over an image's
    feature tokens (as the LLM's attention reads them) and a linear classifier of what it picks. Its loss reaches
    the vision tower and resampler directly instead of through the LLM, so they learn to make shape, position,
    count and word readable from the first steps (measured, BENCHMARKS.md)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.queries = nn.Parameter(torch.zeros(len(task.ANSWERS), hidden))
        self.heads = nn.ModuleDict({kind: nn.Linear(hidden, len(answers)) for kind, answers in task.ANSWERS.items()})

    def logits(self, kind: str, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [N, Q, D] -> [N, answers]; tokens are normalised as the LLM's RMSNorm does."""
        x = F.layer_norm(tokens, tokens.shape[-1:])
        q = self.queries[list(task.ANSWERS).index(kind)]
        w = torch.softmax(x @ q, dim=-1)                         # [N, Q]
        return self.heads[kind]((w[..., None] * x).sum(-2))

    def loss(self, batch: list[Example], feats: list[torch.Tensor]) -> torch.Tensor:
        sources: dict[str, list[torch.Tensor]] = {}
        targets: dict[str, list[int]] = {}
        first = 0
        for e in batch:
            source = feats[first]       # the first image is the whole picture (slices are parts of it)
            first += len(e.pixels)
            for kind, label in e.labels.items():
                sources.setdefault(kind, []).append(source)
                targets.setdefault(kind, []).append(label)
        losses = [F.cross_entropy(self.logits(k, torch.stack(sources[k])), torch.tensor(targets[k]), reduction="sum")
                  for k in sources]
        return torch.stack(losses).sum() / max(1, sum(len(t) for t in targets.values()))


class PooledProbe(nn.Module):
    """Training aid, not part of the checkpoint: per question kind, a linear classifier of [mean, max] over the vision
    tower's patch features of the whole image. The tower alone under this loss learns shapes (97 % after 1000 steps
    of 16 scenes) where the resampler's regional averages and ``ImageProbe`` did not (measured, BENCHMARKS.md)."""

    def __init__(self, width: int):
        super().__init__()
        self.heads = nn.ModuleDict({kind: nn.Linear(2 * width, len(answers)) for kind, answers in task.ANSWERS.items()})

    @staticmethod
    def pooled(patches: torch.Tensor) -> torch.Tensor:
        return torch.cat([patches.mean(0), patches.max(0).values])

    def loss_of(self, sources: list[torch.Tensor], labels: list[dict[str, int]]) -> torch.Tensor:
        """Mean cross-entropy over every (image, kind) pair; ``sources[i]`` [h*w, width] are image i's patches."""
        xs: dict[str, list[torch.Tensor]] = {}
        ys: dict[str, list[int]] = {}
        for src, lab in zip(sources, labels):
            x = self.pooled(src)
            for kind, label in lab.items():
                xs.setdefault(kind, []).append(x)
                ys.setdefault(kind, []).append(label)
        losses = [F.cross_entropy(self.heads[k](torch.stack(xs[k])), torch.tensor(ys[k]), reduction="sum") for k in xs]
        return torch.stack(losses).sum() / max(1, sum(len(y) for y in ys.values()))

    def loss(self, batch: list[Example], patches: list[torch.Tensor]) -> torch.Tensor:
        sources, first = [], 0
        for e in batch:
            sources.append(patches[first])      # the first image is the whole picture
            first += len(e.pixels)
        return self.loss_of(sources, [e.labels for e in batch])


def loss_of(model: MiniCPMV2, batch: list[Example], probe: ImageProbe | None = None,
            dense: DenseProbe | None = None, pool: PooledProbe | None = None
            ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """The answers' cross-entropy (answer tokens and their ``</s>``), the image probe's when ``probe`` is given and
    the dense per-patch loss over every image when ``dense`` is (the examples carry ``parts``)."""
    hidden, feats, patches = batch_forward(model, batch)
    rows, cols, targets = [], [], []
    for b, e in enumerate(batch):
        for t in e.targets:
            rows.append(b)
            cols.append(t - 1)
            targets.append(e.ids[t])
    picked = logits_at(model, hidden[torch.tensor(rows), torch.tensor(cols)])
    answers = F.cross_entropy(picked.float(), torch.tensor(targets))
    dense_loss = None if dense is None else dense.loss(patches, [t for e in batch for t in e.parts])
    return (answers, None if probe is None else probe.loss(batch, feats), dense_loss,
            None if pool is None else pool.loss(batch, patches))


@torch.no_grad()
def greedy_answer(model: MiniCPMV2, tok: MiniCPMVTokenizer, ex: Example, max_new_tokens: int = 6) -> str:
    """Greedy answer of one example's prompt (no cache: answers are a few tokens)."""
    e = Example(list(ex.ids[:ex.n_prompt]), ex.n_prompt, ex.bounds, ex.pixels, [], {})
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


def _part_of(model: MiniCPMV2, patch_apart: bool = False) -> dict[int, str]:
    """id(parameter) -> "regions" (the resampler's attention pattern: queries, ln_q, ln_kv, the attention's
    input projections) or "vision" (the rest of the vision tower and resampler); LLM and probe are absent."""
    r = model.resampler
    regions = {id(p) for p in (r.query, *r.ln_q.parameters(), *r.ln_kv.parameters(), r.attn.in_proj_weight,
                               r.attn.in_proj_bias) if p is not None}
    patch = {id(p) for p in model.vpm.patch_embed.parameters()} if patch_apart else set()
    return {id(p): "regions" if id(p) in regions else "patch" if id(p) in patch else "vision"
            for p in (*model.vpm.parameters(), *model.resampler.parameters())}


def _param_groups(model: MiniCPMV2, params: list[nn.Parameter], weight_decay: float,
                  scales: dict[str, float]) -> list[dict]:
    """AdamW groups of ``params``: per part (``_part_of``, else "rest") at lr x ``scales[part]``; no weight decay
    on vectors. A part missing from ``scales`` is left out (frozen)."""
    part = _part_of(model, "patch" in scales)
    groups = []
    for name, scale in scales.items():
        mine = [p for p in params if part.get(id(p), "rest") == name]
        groups.append({"params": [p for p in mine if p.ndim >= 2], "weight_decay": weight_decay, "lr_scale": scale})
        groups.append({"params": [p for p in mine if p.ndim < 2], "weight_decay": 0.0, "lr_scale": scale})
    return [g for g in groups if g["params"]]


def _overview_pixels(config: MiniCPMV2Config, image) -> np.ndarray:
    """The pixels of the whole-image encoding the runtime makes of ``image`` (its first image: the source)."""
    from ..slicing import slice_image, to_pixel_values
    return to_pixel_values(slice_image(image.convert("RGB"), config.max_slice_nums, config.scale_resolution,
                                       config.patch_size).source)


def pretrain_vision(model: MiniCPMV2, probe: ImageProbe, stream: Iterator[task.Scene], settings: TrainSettings,
                    progress: Callable[[int, int, float], None] | None = None,
                    dense: DenseProbe | None = None, pool: PooledProbe | None = None) -> None:
    """``settings.pretrain_steps`` steps of the vision tower, resampler and ``probe`` alone on the probe's loss
    (plus ``settings.dense_weight`` x ``dense``'s when given; its own AdamW, warmup and cosine decay), over the
    whole-image encodings of ``settings.pretrain_batch`` scenes a step."""
    config = model.config
    params = [p for p in (*model.vpm.parameters(), *model.resampler.parameters(), *probe.parameters(),
                          *(dense.parameters() if dense is not None else ()),
                          *(pool.parameters() if pool is not None else ())) if p.requires_grad]
    groups = _param_groups(model, params, settings.weight_decay,
                           {"regions": settings.pretrain_vision_lr_scale * settings.regions_lr_scale
                            / settings.vision_lr_scale if settings.vision_lr_scale else 0.0,
                            "vision": settings.pretrain_vision_lr_scale, "rest": 1.0,
                            **({} if settings.patch_lr_scale is None else
                               {"patch": settings.pretrain_vision_lr_scale * settings.patch_lr_scale
                                / settings.vision_lr_scale if settings.vision_lr_scale else 0.0})})
    opt = torch.optim.AdamW(groups, lr=settings.pretrain_lr, betas=(0.9, 0.98))
    steps, warmup = settings.pretrain_steps, min(settings.warmup, settings.pretrain_steps // 4 + 1)
    total = steps + settings.steps
    ema = None
    for step in range(steps):
        scenes = [next(stream) for _ in range(settings.pretrain_batch)]
        frac = min(1.0, (step + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        for g in opt.param_groups:
            g["lr"] = settings.pretrain_lr * frac * g["lr_scale"]
        feats, patches = _encode_images_and_patches(model, [_overview_pixels(config, sc.image) for sc in scenes])
        sources: dict[str, list[torch.Tensor]] = {}
        targets: dict[str, list[int]] = {}
        for sc, f in zip(scenes, feats):
            for question, answer in sc.qa:
                kind = task.KIND_OF[question]
                sources.setdefault(kind, []).append(f)
                targets.setdefault(kind, []).append(task.ANSWERS[kind].index(answer))
        loss = torch.stack([F.cross_entropy(probe.logits(k, torch.stack(sources[k])), torch.tensor(targets[k]),
                                            reduction="sum") for k in sources]).sum() / sum(map(len, targets.values()))
        if dense is not None:
            loss = loss + settings.dense_weight * dense.loss(patches, [encoder_image_targets(
                sc.key, sc.image.size, config.scale_resolution, config.patch_size, config.max_slice_nums)[0]
                for sc in scenes])
        if pool is not None:
            loss = loss + settings.pool_weight * pool.loss_of(
                patches, [{task.KIND_OF[q]: task.ANSWERS[task.KIND_OF[q]].index(a) for q, a in sc.qa} for sc in scenes])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema = float(loss.detach()) if ema is None else 0.95 * ema + 0.05 * float(loss.detach())
        if progress:
            progress(step + 1, total, ema)


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
        init_patch_embed(model, config, settings, seed, exclude)
        model.train()
        probe = ImageProbe(config.hidden_size)
        # made only when used: it draws its initial weights from torch's generator
        dense = DenseProbe(vision_width(model.vpm)) if settings.dense_weight else None
        pool = PooledProbe(vision_width(model.vpm)) if settings.pool_weight else None
        params = [p for p in (*model.parameters(), *probe.parameters(),
                              *(dense.parameters() if dense is not None else ()),
                              *(pool.parameters() if pool is not None else ())) if p.requires_grad]
        stream = task.training_stream(seed, exclude, settings.sliced_share)
        if settings.pretrain_steps:
            pretrain_vision(model, probe, stream, settings, progress, dense, pool)
        groups = _param_groups(model, params, settings.weight_decay,
                               {"regions": settings.regions_lr_scale, "vision": settings.vision_lr_scale,
                                "rest": 1.0, **({} if settings.patch_lr_scale is None else
                                                {"patch": settings.patch_lr_scale})})
        opt = torch.optim.AdamW(groups, lr=settings.lr, betas=(0.9, 0.98))

        def lr_at(step: int) -> float:
            if step < settings.warmup:
                return settings.lr * (step + 1) / settings.warmup
            t = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
            return settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

        ema = None
        for step in range(settings.steps):
            batch = [make_example(tok, config, sc.image, sc.qa, sc.key if dense is not None else None)
                     for sc in (next(stream) for _ in range(settings.batch_size))]
            for g in opt.param_groups:
                g["lr"] = lr_at(step) * g["lr_scale"]
            answers, probed, densed, pooled = loss_of(model, batch, probe if settings.probe_weight else None, dense,
                                                      pool)
            loss = answers if probed is None else answers + settings.probe_weight * probed
            if densed is not None:
                loss = loss + settings.dense_weight * densed
            if pooled is not None:
                loss = loss + settings.pool_weight * pooled
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            value = float(answers.detach())
            ema = value if ema is None else 0.95 * ema + 0.05 * value
            if progress:
                progress(settings.pretrain_steps + step + 1, settings.pretrain_steps + settings.steps, ema)
        model.eval()
    return model, {"steps": settings.steps, "pretrain_steps": settings.pretrain_steps,
                   "final_loss": None if ema is None else round(ema, 4)}


def answered(model: MiniCPMV2, tok: MiniCPMVTokenizer, samples: list[task.Sample], threads: int = 1) -> list[bool]:
    """Per sample, whether greedy decoding in PyTorch answers it exactly (case and whitespace aside)."""
    config = model.config
    with torch_threads(threads):
        return [normalise(greedy_answer(model, tok, make_example(tok, config, s.image, [(s.question, s.answer)])))
                == normalise(s.answer) for s in samples]


def evaluate(model: MiniCPMV2, tok: MiniCPMVTokenizer, samples: list[task.Sample], threads: int = 1) -> float:
    """Share of ``samples`` answered exactly (case and whitespace aside) by greedy decoding in PyTorch."""
    return sum(answered(model, tok, samples, threads)) / max(1, len(samples))
