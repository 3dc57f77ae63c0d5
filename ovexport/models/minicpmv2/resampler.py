"""MiniCPM-V-2's adaptive perceiver resampler: 64 learned queries attend to the patch features."""
from __future__ import annotations

import torch
from torch import nn


def sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """[L] positions -> [L, dim]: ``[sin(pos*omega), cos(pos*omega)]``, omega = 1/10000^(i/(dim/2))."""
    omega = torch.arange(dim // 2, dtype=torch.float32) / (dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = pos.to(torch.float32)[:, None] * omega[None, :]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(dim: int, h, w) -> torch.Tensor:
    """MAE 2-D sin-cos table for an (h, w) grid -> [h*w, dim], rows flattened row-major.

    The first half of the channels encodes the w coordinate, the second half the h coordinate
    (the original builds ``np.meshgrid(grid_w, grid_h)``). ``h`` and ``w`` may be 0-d tensors: the
    table is built with broadcasting only, so a traced graph keeps it dynamic.
    """
    ar_h = torch.arange(h, dtype=torch.float32)
    ar_w = torch.arange(w, dtype=torch.float32)
    wpos = (ar_w[None, :] + torch.zeros_like(ar_h)[:, None]).reshape(-1)
    hpos = (ar_h[:, None] + torch.zeros_like(ar_w)[None, :]).reshape(-1)
    return torch.cat([sincos_1d(dim // 2, wpos), sincos_1d(dim // 2, hpos)], dim=1)


class Resampler(nn.Module):
    def __init__(self, embed_dim: int, num_heads: int, kv_dim: int, num_queries: int = 64, eps: float = 1e-6):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_queries = num_queries
        self.query = nn.Parameter(torch.zeros(num_queries, embed_dim))
        # the fixed table stored in the checkpoint; it is added to the queries
        self.pos_embed = nn.Parameter(torch.zeros(num_queries, embed_dim), requires_grad=False)
        self.kv_proj = nn.Linear(kv_dim, embed_dim, bias=False) if kv_dim != embed_dim else nn.Identity()
        self.attn = nn.MultiheadAttention(embed_dim, num_heads)
        self.ln_q = nn.LayerNorm(embed_dim, eps=eps)
        self.ln_kv = nn.LayerNorm(embed_dim, eps=eps)
        self.ln_post = nn.LayerNorm(embed_dim, eps=eps)
        self.proj = nn.Parameter(torch.zeros(embed_dim, embed_dim))

    def forward(self, x: torch.Tensor, tgt_h, tgt_w) -> torch.Tensor:
        """x: [N, h*w, kv_dim] patch features of N images of the same grid -> [N, num_queries, embed_dim]."""
        pos = sincos_2d(self.embed_dim, tgt_h, tgt_w).to(x.dtype)
        x = self.ln_kv(self.kv_proj(x)).permute(1, 0, 2)          # [L, N, D]
        n = x.shape[1]
        q = self.ln_q(self.query)                                  # [Q, D]
        q = q[:, None, :].expand(-1, n, -1) + self.pos_embed[:, None, :]
        out = self.attn(q, x + pos[:, None, :], x)[0]               # [Q, N, D]
        return self.ln_post(out.permute(1, 0, 2)) @ self.proj
