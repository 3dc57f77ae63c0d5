"""MiniCPM-2.4B: a Llama-shaped decoder with MiniCPM's three scalings.

1. text embeddings x ``scale_emb`` (applied by the caller: image features are not scaled),
2. every residual branch x ``scale_depth / sqrt(num_hidden_layers)``,
3. logits = ``lm_head(hidden / (hidden_size / dim_model_base))``.
RMSNorm variance and RoPE are computed in fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import MiniCPMV2Config

KV = tuple[torch.Tensor, torch.Tensor]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.to(torch.float32).pow(2).mean(dim=-1, keepdim=True)
        return (x * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def rope_cos_sin(position_ids: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, T] positions -> cos, sin of shape [B, 1, T, head_dim] in fp32."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim))
    freqs = position_ids.to(torch.float32)[:, :, None] * inv_freq[None, None, :]
    emb = torch.cat((freqs, freqs), dim=-1)[:, None]
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x32 = x.to(torch.float32)
    return (x32 * cos + rotate_half(x32) * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c: MiniCPMV2Config):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c.hidden_size, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, mask, past: KV | None) -> tuple[torch.Tensor, KV]:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        rep = self.heads // self.kv_heads
        kk, vv = (k, v) if rep == 1 else (k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1))
        out = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, t, self.heads * self.head_dim)
        return self.o_proj(out), (k, v)


class MLP(nn.Module):
    def __init__(self, c: MiniCPMV2Config):
        super().__init__()
        self.gate_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, c: MiniCPMV2Config):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = MLP(c)
        self.residual_scale = c.residual_scale

    def forward(self, x, cos, sin, mask, past: KV | None):
        h, present = self.self_attn(self.input_layernorm(x), cos, sin, mask, past)
        x = x + h * self.residual_scale
        x = x + self.mlp(self.post_attention_layernorm(x)) * self.residual_scale
        return x, present


class DecoderModel(nn.Module):
    def __init__(self, c: MiniCPMV2Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.num_hidden_layers))
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


def causal_mask(attention_mask: torch.Tensor, query_len, past_len) -> torch.Tensor:
    """Boolean [B, 1, T, past+T] mask: causal over absolute positions and padding from ``attention_mask``."""
    total = attention_mask.shape[1]
    q_pos = torch.arange(query_len)[:, None] + past_len
    k_pos = torch.arange(total)[None, :]
    allowed = k_pos <= q_pos                                            # [T, total]
    return allowed[None, None] & (attention_mask[:, None, None, :] > 0)


class MiniCPMLM(nn.Module):
    """The ``llm.`` part of the checkpoint: ``llm.model.*`` and ``llm.lm_head``."""

    def __init__(self, c: MiniCPMV2Config):
        super().__init__()
        self.config = c
        self.model = DecoderModel(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Scaled text embeddings (what the LLM sees for text tokens)."""
        return self.model.embed_tokens(input_ids) * self.config.scale_emb

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
                past_key_values: list[KV] | None = None, last_only: bool = False) -> tuple[torch.Tensor, list[KV]]:
        """``(logits [B, T, V], presents)``; ``last_only``: logits of the last position only ([B, 1, V]), as a
        generation step needs them (a 480-token prefill's full logits are 0.24 GB)."""
        c = self.config
        t = inputs_embeds.shape[1]
        past_len = past_key_values[0][0].shape[2] if past_key_values else 0
        mask = causal_mask(attention_mask, t, past_len)
        cos, sin = rope_cos_sin(position_ids, c.head_dim, c.rope_theta)
        x = inputs_embeds
        presents: list[KV] = []
        for i, layer in enumerate(self.model.layers):
            x, present = layer(x, cos, sin, mask, past_key_values[i] if past_key_values else None)
            presents.append(present)
        x = self.model.norm(x[:, -1:] if last_only else x)
        logits = self.lm_head(x / c.logit_scale)
        return logits, presents
