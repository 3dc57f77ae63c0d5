"""The toy model: its config, byte tokenizer, PyTorch modules and checkpoint reader/writer."""
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
SPECIALS = ("<pad>", "<s>", "</s>", "<image>", "</image>", "<unk>")
N_SPECIAL = len(SPECIALS)


@dataclass(frozen=True)
class ToyConfig:
    # the LLM: byte vocabulary, 2 layers of 2 heads
    vocab_size: int = N_SPECIAL + 256
    hidden_size: int = 32
    num_heads: int = 2
    num_layers: int = 2
    max_position_embeddings: int = 256
    embed_scale: float = 2.0            # text embeddings are scaled, image features are not
    # the image encoder: every image resized to 28x28, 2x2 patches, 4 feature tokens
    image_size: int = 28
    patch_size: int = 14
    query_num: int = 4
    model_type: str = MODEL_TYPE

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @classmethod
    def from_dir(cls, path: Path) -> "ToyConfig":
        data = json.loads((Path(path) / "config.json").read_text())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


class ByteTokenizer:
    """Ids 0-5 are the specials, then one id per byte; ``<image>``/``</image>`` written in text are special."""

    pad_id, bos_id, eos_id, im_start_id, im_end_id, unk_id = range(N_SPECIAL)
    special_ids = frozenset(range(N_SPECIAL))
    vocab_size = N_SPECIAL + 256

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = [self.bos_id] if add_bos else []
        i = 0
        while i < len(text):
            tag = next((t for t in SPECIALS[3:] if text.startswith(t, i)), None)
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

    def forward(self, x, attention_mask, position_ids, past):
        b, t, _ = x.shape
        h, d = self.c.num_heads, self.c.head_dim
        q, k, v = self.qkv(x).view(b, t, 3, h, d).permute(2, 0, 3, 1, 4)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        key_pos = torch.arange(k.shape[2], device=x.device)
        causal = key_pos[None, None, None, :] > position_ids[:, None, :, None]
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

    def forward(self, x, attention_mask, position_ids, past):
        a, present = self.attn(self.norm1(x), attention_mask, position_ids, past)
        x = x + a
        return x + self.mlp(self.norm2(x)), present


class ToyLM(nn.Module):
    """``(inputs_embeds, attention_mask, position_ids, past) -> (logits, presents)``; past: [(k, v)] per layer,
    each [B, heads, T, head_dim]."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.positions = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.layers = nn.ModuleList(Block(c) for _ in range(c.num_layers))
        self.norm = nn.LayerNorm(c.hidden_size)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)

    def embed(self, ids):
        """Scaled text embeddings (what the runtime feeds the LLM)."""
        return self.embed_tokens(ids) * self.c.embed_scale

    def forward(self, inputs_embeds, attention_mask, position_ids, past=None):
        x = inputs_embeds + self.positions(position_ids)
        presents = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, attention_mask, position_ids, None if past is None else past[i])
            presents.append(kv)
        return self.lm_head(self.norm(x)), presents


class ToyImageEncoder(nn.Module):
    """``(pixel_values [N, 3, H, W], tgt_size [2]) -> [N, query_num, hidden]``: patches, then learned queries (shifted
    by the patch grid) attend over them."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.c = c
        self.patch = nn.Conv2d(3, c.hidden_size, c.patch_size, stride=c.patch_size)
        self.queries = nn.Parameter(torch.zeros(c.query_num, c.hidden_size))
        self.grid = nn.Linear(2, c.hidden_size)
        self.proj = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, pixel_values, tgt_size):
        patches = self.patch(pixel_values).flatten(2).transpose(1, 2)          # [N, P, D]
        q = self.queries + self.grid(tgt_size.to(patches.dtype) / 8.0)          # [Q, D]
        attn = (q @ patches.transpose(1, 2) / math.sqrt(self.c.hidden_size)).softmax(-1)  # [N, Q, P]
        return self.proj(attn @ patches)


class TextEmbeddings(nn.Module):
    def __init__(self, c: ToyConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)

    def forward(self, input_ids):
        return self.embed_tokens(input_ids)


class ToyVLM(nn.Module):
    """What the checkpoint holds: ``llm.*`` and ``vision.*``."""

    def __init__(self, c: ToyConfig):
        super().__init__()
        self.llm = ToyLM(c)
        self.vision = ToyImageEncoder(c)


# ------------------------------------------------------------------------------------------ checkpoints


def load_part(ckpt: Path, kind: str, dtype=torch.float32) -> nn.Module:
    """``kind``: "llm", "vision" or "text_embeddings", with its weights from the checkpoint."""
    from safetensors.torch import load_file

    c = ToyConfig.from_dir(ckpt)
    module, prefix = {"llm": (ToyLM(c), "llm."), "vision": (ToyImageEncoder(c), "vision."),
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
        model.vision.queries.normal_(0, 1)
        for p in model.llm.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / WEIGHTS))
    (out / "config.json").write_text(c.to_json())
    gen = generation_config if generation_config is not None else {
        "bos_token_id": ByteTokenizer.bos_id, "eos_token_id": ByteTokenizer.eos_id, "temperature": 0.5, "top_k": 20}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    return out
