"""MiniCPM-V-2's image encoder as the two IRs openvino.genai's ``VLMPipeline`` opens for a ``minicpmv`` folder.

openvino.genai (``src/cpp/src/visual_language/minicpm/``) was written for MiniCPM-V-2.6. It calls

- ``openvino_vision_embeddings_model.xml`` with ``pixel_values`` [N, 3, p, L*p] (every image of one prompt, the
  source and its slices, each cut into its p x p patches laid side by side, row-major, zero-padded to the longest),
  ``patch_attention_mask`` [N, 1, L] (1.0 for an image's own patches) and ``position_ids`` [N, L]
  (``bucket(row) * S + bucket(col)`` over an S x S grid, S = ``image_size / patch_size`` of
  ``preprocessor_config.json``), and expects the patch features [N, L, width];
- ``openvino_resampler_model.xml`` with ``image_feature`` [1, L, width], ``pos_embed`` [L, 1, D] (the 2-D sin-cos
  table it computes itself) and ``key_padding_mask`` [1, L] (1.0 = padding), and expects [1, query_num, D].

V-2 differs from 2.6 in both: its SigLIP tower (timm) resizes its 27x27 position table bicubically (antialiased)
to each image's patch grid, where 2.6's looks positions up by bucket; and it runs each image alone, where genai
pads a batch. :class:`VisionEmbeddings` therefore recovers each image's grid from the inputs genai gives (the
number of patches from the mask, the width from where ``position_ids`` start a new row), rebuilds torch's
antialiased bicubic weights for every patch in the graph, and masks the padding out of attention. With
``S >= `` the widest grid, ``position_ids % S == 0`` exactly at the start of each row. :class:`GenaiResampler`
is V-2's resampler with the table and the padding mask as inputs. Both give V-2's numbers for every image
(tests/integration/test_genai_bundle.py).
"""
from __future__ import annotations

import torch
from torch import nn

from .resampler import Resampler

# S of the docstring, written to preprocessor_config.json as image_size = S * patch_size. Grids up to S patches
# wide are recovered exactly; V-2's slicer keeps an image's area near 448^2 px (32x32 patches), so S = 1024
# covers aspect ratios up to 1000:1.
POSITION_BUCKETS = 1024


def _bicubic_aa(x: torch.Tensor) -> torch.Tensor:
    """torch's antialiased bicubic filter (Keys, a = -0.5, as PIL), elementwise."""
    a = -0.5
    x = x.abs()
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def resize_weights(index: torch.Tensor, out_size: torch.Tensor, in_size: int) -> torch.Tensor:
    """Weights [..., in_size] of ``F.interpolate(mode="bicubic", antialias=True, align_corners=False)`` for output
    row ``index`` of ``out_size`` rows (tensors, broadcast together), as aten's ``_upsample_bicubic2d_aa``
    computes them: centre ``scale * (i + 0.5)``, support widened by ``scale`` when shrinking, normalised."""
    index, out_size = index.to(torch.float32), out_size.to(torch.float32)
    scale = in_size / out_size
    inv = torch.where(scale >= 1, 1.0 / scale, torch.ones_like(scale))
    center = scale * (index + 0.5)
    src = torch.arange(in_size, dtype=torch.float32)
    w = _bicubic_aa((src + 0.5 - center[..., None]) * inv[..., None])
    return w / w.sum(-1, keepdim=True)


def grid_of(patch_attention_mask: torch.Tensor, position_ids: torch.Tensor, buckets: int = POSITION_BUCKETS):
    """Each image's patch count ``L``, grid width ``w`` and height ``h`` ([N] each) from genai's inputs."""
    n_patches = patch_attention_mask.reshape(patch_attention_mask.shape[0], -1).sum(-1).round().to(torch.int64)
    j = torch.cumsum(torch.ones_like(position_ids), dim=1) - 1                   # [N, Lmax] patch index
    row_start = (torch.remainder(position_ids, buckets) == 0) & (j >= 1) & (j < n_patches[:, None])
    width = torch.where(row_start, j, n_patches[:, None].expand_as(j)).amin(dim=1).clamp(min=1)
    return n_patches, width, torch.div(n_patches, width, rounding_mode="floor").clamp(min=1)


class VisionEmbeddings(nn.Module):
    """V-2's SigLIP tower (final norm included) on genai's strip of patches -> [N, Lmax, width]."""

    def __init__(self, tower: nn.Module, buckets: int = POSITION_BUCKETS):
        super().__init__()
        self.vpm = tower   # named as in MiniCPMV2: IR node names (ignored-scope patterns) stay those of the model
        self.buckets = buckets
        gh, gw = tower.patch_embed.grid_size
        self.grid = (int(gh), int(gw))       # the stored table's grid (27x27)

    def position_embedding(self, patch_attention_mask: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        """[N, Lmax, width]: the 27x27 table resized to each image's grid, at each of its patches."""
        _, width, height = grid_of(patch_attention_mask, position_ids, self.buckets)
        j = torch.cumsum(torch.ones_like(position_ids), dim=1) - 1
        row = torch.div(j, width[:, None], rounding_mode="floor")
        col = j - row * width[:, None]
        row = torch.minimum(row, height[:, None] - 1)   # padding: any finite value (NaN would leak through attention)
        wr = resize_weights(row, height[:, None], self.grid[0])                   # [N, Lmax, gh]
        wc = resize_weights(col, width[:, None], self.grid[1])                    # [N, Lmax, gw]
        weights = (wr[..., :, None] * wc[..., None, :]).flatten(2)               # [N, Lmax, gh * gw]
        table = self.vpm.pos_embed.reshape(self.grid[0] * self.grid[1], -1)    # rows of the (gh, gw) grid
        return weights.to(table.dtype) @ table

    def forward(self, pixel_values: torch.Tensor, patch_attention_mask: torch.Tensor,
                position_ids: torch.Tensor) -> torch.Tensor:
        t = self.vpm
        x = t.patch_embed.proj(pixel_values.to(t.patch_embed.proj.weight.dtype))  # [N, width, 1, Lmax]
        x = x.flatten(2).transpose(1, 2)
        x = t.patch_embed.norm(x)
        x = x + self.position_embedding(patch_attention_mask, position_ids)
        keep = patch_attention_mask.reshape(x.shape[0], 1, 1, -1) > 0.5          # [N, 1, 1, Lmax] keys attended
        x = t.norm_pre(x)
        for blk in t.blocks:
            x = blk(x, attn_mask=keep)
        return t.norm(x)


class GenaiResampler(nn.Module):
    """V-2's resampler with the key positions' sin-cos table and the padding mask as inputs -> [N, Q, D]."""

    def __init__(self, resampler: Resampler):
        super().__init__()
        self.resampler = resampler   # named as in MiniCPMV2 (IR node names)

    def forward(self, image_feature: torch.Tensor, pos_embed: torch.Tensor,
                key_padding_mask: torch.Tensor) -> torch.Tensor:
        r = self.resampler
        x = r.ln_kv(r.kv_proj(image_feature)).permute(1, 0, 2)                    # [L, N, D]
        n = x.shape[1]
        q = r.ln_q(r.query)[:, None, :].expand(-1, n, -1) + r.pos_embed[:, None, :]
        out = r.attn(q, x + pos_embed.to(x.dtype), x, key_padding_mask=key_padding_mask > 0.5,
                     need_weights=False)[0]
        return r.ln_post(out.permute(1, 0, 2)) @ r.proj
