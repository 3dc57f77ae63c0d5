"""Our PyTorch MiniCPM-V-2 against the spec, written out independently in numpy; names against the real index."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from ovexport.errors import CheckpointError
from ovexport.models.minicpmv2.checkpoint import tensor_shapes
from ovexport.models.minicpmv2.config import MiniCPMV2Config
from ovexport.models.minicpmv2.model import MiniCPMV2
from ovexport.models.minicpmv2.parts import load_image_encoder, load_llm
from ovexport.models.minicpmv2.resampler import sincos_2d
from ovexport.models.minicpmv2.synth import GENERATION_CONFIG, REAL_CONFIG, write_synthetic_checkpoint
from ovexport.models.minicpmv2.synth_tokenizer import SPECIAL_TOKENS_MAP, TOKENIZER_CONFIG

pytestmark = pytest.mark.unit

# The real checkpoint's metadata (no weights), copied into the repository: tests/data/README.md
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "minicpm-v-2"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_synthetic_checkpoint(tmp_path_factory.mktemp("ckpt"), "tiny", seed=3)


def test_full_size_names_and_shapes_match_the_real_checkpoint_index():
    index = REFERENCE / "model.safetensors.index.json"
    config = json.loads((REFERENCE / "config.json").read_text())
    with torch.device("meta"):
        model = MiniCPMV2(MiniCPMV2Config.from_dict(config))
    shapes = tensor_shapes(model)
    real = json.loads(index.read_text())
    assert sorted(shapes) == sorted(real["weight_map"])
    # bf16: 2 bytes a parameter
    assert sum(math.prod(s) for s in shapes.values()) * 2 == real["metadata"]["total_size"]
    assert shapes["resampler.pos_embed"] == (64, 2304)
    assert shapes["vpm.pos_embed"] == (1, 729, 1152)
    assert shapes["resampler.kv_proj.weight"] == (2304, 1152)
    assert shapes["llm.lm_head.weight"] == (122753, 2304)
    assert max(int(k.split(".")[2]) for k in shapes if k.startswith("vpm.blocks.")) == 25


def test_release_disk_estimate_counts_the_weights_of_the_real_checkpoint():
    from ovexport.models.minicpmv2 import resources

    config = json.loads((REFERENCE / "config.json").read_text())
    with torch.device("meta"):
        shapes = tensor_shapes(MiniCPMV2(MiniCPMV2Config.from_dict(config)))
    part = {"vpm": "image_encoder", "resampler": "image_encoder", "llm": "llm"}
    counted = {"text_embeddings": 0, "llm": 0, "image_encoder": 0}
    for name, shape in shapes.items():
        counted["text_embeddings" if name == "llm.model.embed_tokens.weight" else part[name.split(".")[0]]] += \
            math.prod(shape)
    assert counted == resources.FULL_WEIGHTS and math.prod(shapes["llm.lm_head.weight"]) == resources.LM_HEAD
    total = json.loads((REFERENCE / "model.safetensors.index.json").read_text())["metadata"]["total_size"]
    assert resources.CHECKPOINT_BYTES == total


def test_builtin_real_config_is_the_published_one():
    assert REAL_CONFIG == json.loads((REFERENCE / "config.json").read_text())


@pytest.mark.parametrize("name,ours", [
    ("tokenizer_config.json", TOKENIZER_CONFIG),
    ("special_tokens_map.json", SPECIAL_TOKENS_MAP),
    ("generation_config.json", GENERATION_CONFIG),
])
def test_synthetic_checkpoint_metadata_is_the_published_one(name, ours):
    """synth writes these into every synthetic checkpoint as "the same content as the real one"."""
    assert ours == json.loads((REFERENCE / name).read_text())


def _sincos_numpy(dim: int, h: int, w: int) -> np.ndarray:
    """The MAE recipe as the original writes it (np.meshgrid with w first)."""
    def one_d(d, pos):
        omega = np.arange(d // 2, dtype=np.float32) / (d / 2.0)
        omega = 1.0 / 10000 ** omega
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)
    grid = np.stack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)), axis=0)
    return np.concatenate([one_d(dim // 2, grid[0]), one_d(dim // 2, grid[1])], axis=1)


@pytest.mark.parametrize("h,w", [(1, 1), (32, 32), (27, 27), (24, 43), (46, 18)])
def test_resampler_sincos_table_is_the_mae_recipe(h, w):
    ours = sincos_2d(128, torch.tensor(h), torch.tensor(w)).numpy()
    np.testing.assert_allclose(ours, _sincos_numpy(128, h, w), atol=2e-5)


def _rms(x, w, eps):
    return x / np.sqrt((x.astype(np.float64) ** 2).mean(-1, keepdims=True) + eps) * w


def _llm_numpy(sd: dict, c: MiniCPMV2Config, embeds: np.ndarray) -> np.ndarray:
    """MiniCPM's forward from the spec, in float64 numpy: no cache, one sequence."""
    t = embeds.shape[0]
    hd = c.head_dim
    inv = 1.0 / c.rope_theta ** (np.arange(0, hd, 2) / hd)
    ang = np.arange(t)[:, None] * inv[None]
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rope(x):  # [heads, t, hd]
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    x = embeds.astype(np.float64)
    scale = c.scale_depth / math.sqrt(c.num_hidden_layers)
    causal = np.tril(np.ones((t, t), bool))
    for i in range(c.num_hidden_layers):
        p = lambda n: sd[f"llm.model.layers.{i}.{n}"].double().numpy()  # noqa: E731
        h = _rms(x, p("input_layernorm.weight"), c.rms_norm_eps)
        q, k, v = (h @ p(f"self_attn.{n}_proj.weight").T for n in "qkv")
        q, k, v = (a.reshape(t, c.num_attention_heads, hd).transpose(1, 0, 2) for a in (q, k, v))
        q, k = rope(q), rope(k)
        att = q @ k.transpose(0, 2, 1) / math.sqrt(hd)
        att = np.where(causal, att, -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        att /= att.sum(-1, keepdims=True)
        o = (att @ v).transpose(1, 0, 2).reshape(t, -1) @ p("self_attn.o_proj.weight").T
        x = x + o * scale
        h = _rms(x, p("post_attention_layernorm.weight"), c.rms_norm_eps)
        g, u = h @ p("mlp.gate_proj.weight").T, h @ p("mlp.up_proj.weight").T
        x = x + ((g / (1 + np.exp(-g))) * u) @ p("mlp.down_proj.weight").T * scale
    x = _rms(x, sd["llm.model.norm.weight"].double().numpy(), c.rms_norm_eps)
    return (x / (c.hidden_size / c.dim_model_base)) @ sd["llm.lm_head.weight"].double().numpy().T


def test_llm_matches_the_spec_formulas(tiny):
    from safetensors.torch import load_file

    c = MiniCPMV2Config.from_dir(tiny)
    sd = {}
    for f in sorted(tiny.glob("*.safetensors")):
        sd.update(load_file(f))
    llm = load_llm(tiny, c)
    ids = torch.tensor([[1, 5, 101, 0, 0, 102, 300, 42]])
    with torch.no_grad():
        emb = llm.embed(ids)
        ours, _ = llm(emb, torch.ones_like(ids), torch.arange(ids.shape[1])[None])
    # text embeddings are scaled by scale_emb
    np.testing.assert_allclose(emb[0].numpy(), sd["llm.model.embed_tokens.weight"][ids[0]].numpy() * c.scale_emb,
                               rtol=1e-6)
    ref = _llm_numpy(sd, c, emb[0].double().numpy())
    np.testing.assert_allclose(ours[0].double().numpy(), ref, atol=2e-3, rtol=1e-3)
    assert np.abs(ref).max() > 1.0          # the logits are not trivially small


def test_kv_cache_decode_equals_full_forward(tiny):
    llm = load_llm(tiny)
    x = torch.randn(1, 6, llm.config.hidden_size)
    with torch.no_grad():
        full, _ = llm(x, torch.ones(1, 6, dtype=torch.int64), torch.arange(6)[None])
        _, past = llm(x[:, :4], torch.ones(1, 4, dtype=torch.int64), torch.arange(4)[None])
        step, _ = llm(x[:, 4:], torch.ones(1, 6, dtype=torch.int64), torch.arange(4, 6)[None], past)
    torch.testing.assert_close(step, full[:, 4:], atol=1e-4, rtol=1e-4)


def test_resampler_follows_the_spec(tiny):
    """ln_kv(kv_proj(x)); key = x + sincos; q = ln_q(query) + stored pos_embed; MHA; ln_post; @ proj."""
    enc = load_image_encoder(tiny)
    r = enc.resampler
    feats = torch.randn(1, 12 * 7, enc.vpm.embed_dim)
    with torch.no_grad():
        ours = r(feats, torch.tensor(12), torch.tensor(7))[0]
        x = r.ln_kv(r.kv_proj(feats[0]))
        key = x + torch.as_tensor(_sincos_numpy(r.embed_dim, 12, 7))
        q = r.ln_q(r.query) + r.pos_embed
        out, _ = torch.nn.functional.multi_head_attention_forward(
            q[:, None], key[:, None], x[:, None], r.embed_dim, r.attn.num_heads, r.attn.in_proj_weight,
            r.attn.in_proj_bias, None, None, False, 0.0, r.attn.out_proj.weight, r.attn.out_proj.bias,
            training=False, need_weights=False)
        ref = r.ln_post(out[:, 0]) @ r.proj
    torch.testing.assert_close(ours, ref, atol=1e-4, rtol=1e-4)


def test_vision_tower_drops_last_block_and_attention_pool(tiny):
    enc = load_image_encoder(tiny)
    c = MiniCPMV2Config.from_dir(tiny)
    assert len(enc.vpm.blocks) == c.vision_config["depth"] - 1
    assert isinstance(enc.vpm.attn_pool, torch.nn.Identity)
    # dynamic padding: a 20x30 image has a ceil(20/14) x ceil(30/14) = 2 x 3 grid
    with torch.no_grad():
        out = enc.vpm.forward_features(torch.randn(1, 3, 20, 30))
    assert out.shape[1] == 6


def _copy_with_index(src: Path, dst: Path) -> tuple[Path, dict]:
    shutil.copytree(src, dst)
    return dst, json.loads((dst / "model.safetensors.index.json").read_text())


def test_wrong_tensor_shape_is_one_clear_error(tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    bad, index = _copy_with_index(tiny, tmp_path / "bad")
    shard = bad / index["weight_map"]["llm.model.norm.weight"]
    sd = load_file(shard)
    sd["llm.model.norm.weight"] = torch.ones(7)
    save_file(sd, shard)
    with pytest.raises(CheckpointError, match=r"tensor llm\.model\.norm\.weight .* has shape \(7,\), expected \(128,\)"):
        load_llm(bad)


def test_missing_tensor_is_one_clear_error(tiny, tmp_path):
    bad, index = _copy_with_index(tiny, tmp_path / "bad")
    del index["weight_map"]["llm.lm_head.weight"]
    (bad / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=r"lacks tensor llm\.lm_head\.weight"):
        load_llm(bad)


def test_synthetic_checkpoint_is_deterministic_and_not_trivial(tiny, tmp_path):
    from safetensors.torch import load_file

    again = write_synthetic_checkpoint(tmp_path / "again", "tiny", seed=3)
    a = load_file(sorted(tiny.glob("*.safetensors"))[0])
    b = load_file(sorted(again.glob("*.safetensors"))[0])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    norms = [v for k, v in a.items() if k.endswith("norm.weight")]
    assert norms and all((v - 1).abs().mean() > 0.05 for v in norms)   # not all ones
    for f in ("config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json",
              "special_tokens_map.json", "model.safetensors.index.json"):
        assert (tiny / f).is_file(), f


def test_fp32_compute_on_bf16_weights_equals_the_fp32_model_of_the_same_weights(tiny):
    """The memory-lean reference (bf16 weights, fp32 arithmetic) computes what an fp32 model does."""
    from ovexport.models.minicpmv2.fp32_compute import UpcastLinear, fp32_compute

    lean = fp32_compute(load_llm(tiny, dtype=torch.bfloat16))
    full = load_llm(tiny, dtype=torch.bfloat16).float()          # the same rounded weights, as fp32 copies
    assert isinstance(lean.model.layers[0].self_attn.q_proj, UpcastLinear)
    assert lean.model.layers[0].self_attn.q_proj.weight.dtype == torch.bfloat16
    assert lean.model.norm.weight.dtype == torch.float32
    ids = torch.tensor([[1, 7, 9, 300]])
    with torch.no_grad():
        a, _ = lean(lean.embed(ids), torch.ones_like(ids), torch.arange(4)[None])
        b, _ = full(full.embed(ids), torch.ones_like(ids), torch.arange(4)[None])
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    enc_lean = fp32_compute(load_image_encoder(tiny, dtype=torch.bfloat16))
    enc_full = load_image_encoder(tiny, dtype=torch.bfloat16).float()
    px = torch.randn(1, 3, 56, 70)
    with torch.no_grad():
        torch.testing.assert_close(enc_lean(px, torch.tensor([4, 5])), enc_full(px, torch.tensor([4, 5])),
                                   atol=1e-5, rtol=1e-5)


def test_upcast_linear_in_row_chunks_equals_one_matmul(monkeypatch):
    """Big layers (the full-size lm_head) are upcast a few rows at a time: same numbers, bounded memory."""
    from ovexport.models.minicpmv2 import fp32_compute as f

    layer = torch.nn.Linear(64, 500).to(torch.bfloat16)
    f.fp32_compute(layer)
    x = torch.randn(3, 7, 64)
    whole = torch.nn.functional.linear(x, layer.weight.float(), layer.bias.float())
    monkeypatch.setattr(f, "CHUNK_ELEMENTS", 64 * 37)           # 37 rows a chunk: 14 chunks, last one short
    with torch.no_grad():
        torch.testing.assert_close(layer(x), whole, atol=1e-5, rtol=1e-5)
