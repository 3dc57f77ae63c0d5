"""Run a module stored in 16 bits with fp32 arithmetic, without an fp32 copy of its big weights (nor, when they
are mapped from the checkpoint, a copy at all).

``Linear`` and ``Embedding`` layers keep their (bf16/fp16) weights and upcast them per call; every
other parameter (norms, biases, position tables, the resampler's attention) is small and becomes
fp32. Numerically this is the fp32 model (upcasting is exact), at half its memory: what lets the
full-size reference (2.4B-parameter LLM) fit next to an OpenVINO model in 10 GB.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


# rows of a weight upcast at once: at most 64 MB of fp32 temporaries, whatever the layer
# (the full-size lm_head alone would be a 1.1 GB fp32 copy)
CHUNK_ELEMENTS = 16 * 1024 * 1024


def _released(module: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """``out``, once the pages of ``module``'s weight are given back when it is a view of a mapped checkpoint."""
    release = getattr(module, "release_weight", None)
    if release is not None:
        release(module.weight)
    return out


class UpcastLinear(nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        bias = None if self.bias is None else self.bias.float()
        rows = max(1, CHUNK_ELEMENTS // self.in_features)
        if self.out_features <= rows:
            return _released(self, F.linear(x, self.weight.float(), bias))
        out = x.new_empty(*x.shape[:-1], self.out_features)
        for start in range(0, self.out_features, rows):
            end = min(start + rows, self.out_features)
            out[..., start:end] = F.linear(x, self.weight[start:end].float(),
                                           None if bias is None else bias[start:end])
        return _released(self, out)


class UpcastEmbedding(nn.Embedding):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return _released(self, F.embedding(ids, self.weight).float())


_UPCAST = {nn.Linear: UpcastLinear, nn.Embedding: UpcastEmbedding}


def fp32_compute(module: nn.Module) -> nn.Module:
    """In place: big 16-bit layers upcast per call, all other parameters converted to fp32. Where the module was
    loaded with its weights mapped (``mapped_shards``: ``parts._load(mapped=True)``), each upcast layer gives its
    weight's pages back after every call: about one layer of weights is resident at a time, not the module."""
    shards = getattr(module, "mapped_shards", ())
    for m in module.modules():
        cls = _UPCAST.get(type(m))
        if cls is not None and m.weight.dtype != torch.float32:
            m.__class__ = cls          # same parameters, same state-dict names; only forward differs
            holder = next((s for s in shards if s.holds(m.weight)), None)
            if holder is not None:
                m.release_weight = holder.release
            if getattr(m, "bias", None) is not None:
                m.bias.data = m.bias.data.float()
            continue
        if isinstance(m, tuple(_UPCAST.values())):
            continue
        for p in m.parameters(recurse=False):
            if p.dtype.is_floating_point and p.dtype != torch.float32:
                p.data = p.data.float()
    return module
