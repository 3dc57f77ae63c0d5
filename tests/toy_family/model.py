"""The toy model, deliberately unlike MiniCPM-V-2: its config, byte tokenizer, PyTorch modules and checkpoint
reader/writer.

- every image is resized to one fixed size (32x32, no slicing) and normalised to [0, 1];
- the image encoder is two modules, exported as two IRs: a vision tower (8x8 patches -> 16 patch embeddings of
  width 24) and a projector that merges each 2x2 block of patches into one LLM token (4 tokens per image);
- the LLM takes 3-row M-RoPE-style position ids ``[3, B, T]`` (temporal, height, width): text advances all three
  rows together, an image's tokens share the temporal position and spread over height and width;
- a ChatML-like prompt with ``<|vision_start|>`` / ``<|image_pad|>`` / ``<|vision_end|>`` tokens and no BOS.
"""
from __future__ import annotations

import codecs
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

MODEL_TYPE = "ovexport-toy-vlm"
WEIGHTS = "model.safetensors"
SPECIALS = ("<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>",
            "<|vision_end|>")
N_SPECIAL = len(SPECIALS)


@dataclass(frozen=True)
class ToyConfig:
    # the LLM: byte vocabulary, 2 layers of 2 heads, 3-row positions
    vocab_size: int = N_SPECIAL + 256
    hidden_size: int = 32
    num_heads: int = 2
    num_layers: int = 2
    max_position_embeddings: int = 256
    embed_scale: float = 1.0
    # the image: resized to 32x32, 8x8 patches (4x4 grid) of width 24; the projector merges 2x2 patches
    image_size: int = 32
    patch_size: int = 8
    vision_width: int = 24
    merge: int = 2
    model_type: str = MODEL_TYPE

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def grid(self) -> int:
        """Patches per side."""
        return self.image_size // self.patch_size

    @property
    def image_tokens(self) -> int:
        return (self.grid // self.merge) ** 2

    @classmethod
    def from_dir(cls, path: Path) -> "ToyConfig":
        data = json.loads((Path(path) / "config.json").read_text())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class ByteTokenizer:
    """Ids 0-6 are the specials, then one id per byte; special tokens written in text are special. No BOS: the
    prompt starts with ``<|im_start|>`` (``bos_id`` is what a bare prompt starts with)."""

    pad_id, eos_id, im_start_id, im_end_id, vision_start_id, image_pad_id, vision_end_id = range(N_SPECIAL)
    bos_id = im_start_id
    special_ids = frozenset(range(N_SPECIAL))
    vocab_size = N_SPECIAL + 256

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids: list[int] = []
        i = 0
        while i < len(text):
            tag = next((t for t in SPECIALS if text.startswith(t, i)), None)
            if tag is not None:
                ids.append(SPECIALS.index(tag))
                i += len(tag)
                continue
            ids.extend(N_SPECIAL + b for b in text[i].encode("utf-8"))
            i += 1
        return ids

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        data = bytes(int(i) - N_SPECIAL for i in ids if N_SPECIAL <= int(i) < self.vocab_size)
        return data.decode("utf-8", errors="replace")

    def stream(self) -> "ByteStream":
        return ByteStream(self)


class ByteStream:
    """Incremental decoding: whole characters only."""

    def __init__(self, tokenizer: ByteTokenizer):
        self.tokenizer = tokenizer
        self.reset()

    def push(self, token_id: int) -> str:
        i = int(token_id)
        return self._dec.decode(bytes([i - N_SPECIAL])) if N_SPECIAL <= i < self.tokenizer.vocab_size else ""

    def flush(self) -> str:
        return self._dec.decode(b"", final=True)

    def reset(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")


# ------------------------------------------------------------------------------------------ modules


class Attention(nn.Module):
    def __init__(self, c: ToyConfig):
        super().__init__()
        self.c = c
        self.qkv = nn.Linear(c.hidden_size, 3 * c.hidden_size)
        self.out = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x, attention_mask, past):
        b, t, _ = x.shape
        h, d = self.c.num_heads, self.c.head_dim
        q, k, v = self.qkv(x).view(b, t, 3, h, d).permute(2, 0, 3, 1, 4)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        # causal by place in the sequence (M-RoPE positions are not sequence indices)
        n_keys = k.shape[2]
        key_idx = torch.arange(n_keys, device=x.device)
        query_idx = torch.arange(t, device=x.device) + (n_keys - t)
        causal = key_idx[None, None, None, :] > query_idx[None, None, :, None]
        padding = attention_mask[:, None, None, :] == 0
        scores = scores.masked_fill(causal | padding, torch.finfo(scores.dtype).min)
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, t, h * d)
        return self.out(y), (k, v)


class Block(nn.Module):
    def __init__(self, c: ToyConfig):
        super().__init__()
        self.norm1 = nn.LayerNorm(c.hidden_size)
        self.attn = Attention(c)
        self.norm2 = nn.LayerNorm(c.hidden_size)
        self.mlp = nn.Sequential(nn.Linear(c.hidden_size, 4 * c.hidden_size), nn.GELU(),
                                 nn.Linear(4 * c.hidden_size, c.hidden_size))

    def forward(self, x, attention_mask, past):
        a, present = self.attn(self.norm1(x), attention_mask, past)
        x = x + a
        return x + self.mlp(self.norm2(x)), present


class ToyLM(nn.Module):
    """``(inputs_embeds, attention_mask, position_ids [3, B, T], past) -> (logits, presents)``; past: [(k, v)] per
    layer, each [B, heads, T, head_dim]. Each position row has its own embedding table (a stand-in for M-RoPE's
    sections of the rotary frequencies)."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.positions = nn.ModuleList(nn.Embedding(c.max_position_embeddings, c.hidden_size) for _ in range(3))
        self.layers = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.hidden_size)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def embed(self, ids):
        """Scaled text embeddings (what the runtime feeds the LLM)."""
        return self.embed_tokens(ids) * self.c.embed_scale

    def forward(self, inputs_embeds, attention_mask, position_ids, past=None):
        x = inputs_embeds
        for row, table in enumerate(self.positions):
            x = x + table(position_ids[row])
        presents = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, attention_mask, None if past is None else past[i])
            presents.append(kv)
        return self.lm_head(self.norm(x)), presents


class VisionTower(nn.Module):
    """``pixel_values [N, 3, 32, 32]`` in [0, 1] -> patch embeddings ``[N, 16, vision_width]``."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.patch = nn.Conv2d(3, c.vision_width, c.patch_size, stride=c.patch_size)
        self.pos = nn.Parameter(torch.zeros(c.grid * c.grid, c.vision_width))
        self.norm = nn.LayerNorm(c.vision_width)

    def forward(self, pixel_values):
        x = self.patch(pixel_values).flatten(2).transpose(1, 2) + self.pos
        return self.norm(x)


class Projector(nn.Module):
    """``patch embeddings [N, 16, vision_width]`` -> LLM tokens ``[N, 4, hidden]``: each 2x2 block of patches
    concatenated, then an MLP (Qwen2-VL's merger, in miniature)."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.c = c
        self.mlp = nn.Sequential(nn.Linear(c.merge * c.merge * c.vision_width, c.hidden_size), nn.GELU(),
                                 nn.Linear(c.hidden_size, c.hidden_size))

    def forward(self, patch_embeds):
        c = self.c
        n, g, m = patch_embeds.shape[0], c.grid, c.merge
        x = patch_embeds.reshape(n, g // m, m, g // m, m, c.vision_width).permute(0, 1, 3, 2, 4, 5)
        return self.mlp(x.reshape(n, (g // m) ** 2, m * m * c.vision_width))


class TextEmbeddings(nn.Module):
    def __init__(self, c: ToyConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)

    def forward(self, input_ids):
        return self.embed_tokens(input_ids)


class ToyVLM(nn.Module):
    """What the checkpoint holds: ``llm.*``, ``visual.*`` and ``projector.*``."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.llm = ToyLM(c)
        self.visual = VisionTower(c)
        self.projector = Projector(c)


# ------------------------------------------------------------------------------------------ checkpoints


def load_part(ckpt: Path, kind: str, dtype=torch.float32) -> nn.Module:
    """``kind``: "llm", "visual", "projector" or "text_embeddings", with its weights from the checkpoint."""
    from safetensors.torch import load_file

    c = ToyConfig.from_dir(ckpt)
    module, prefix = {"llm": (ToyLM(c), "llm."), "visual": (VisionTower(c), "visual."),
                      "projector": (Projector(c), "projector."),
                      "text_embeddings": (TextEmbeddings(c), "llm.")}[kind]
    tensors = load_file(str(Path(ckpt) / WEIGHTS))
    state = {k[len(prefix):]: v.to(dtype) for k, v in tensors.items() if k.startswith(prefix)}
    own = module.state_dict()
    module.load_state_dict({k: state[k] for k in own})
    return module.eval()


def write_checkpoint(out: Path, seed: int = 0, generation_config: dict | None = None) -> Path:
    """A random toy checkpoint: config.json, generation_config.json, model.safetensors."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    c = ToyConfig()
    torch.manual_seed(seed)
    model = ToyVLM(c)
    with torch.no_grad():
        model.visual.pos.normal_(0, 0.5)
        for p in model.llm.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS))
    (out / "config.json").write_text(c.to_json())
    gen = generation_config if generation_config is not None else {
        "eos_token_id": [ByteTokenizer.eos_id, ByteTokenizer.im_end_id], "temperature": 0.5, "top_k": 20}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    return out
