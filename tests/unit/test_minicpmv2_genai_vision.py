"""The image encoder in openvino.genai's two-IR form computes MiniCPM-V-2's numbers (PyTorch, no OpenVINO):
torch's antialiased bicubic resize rebuilt weight by weight, each image's grid read back from genai's inputs, and a
padded batch of different grids equal to each image encoded alone."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ovexport.models.minicpmv2.genai_inputs import (genai_prepared, patch_strip, resampler_inputs, sincos_2d,
                                                   vision_position_ids)
from ovexport.models.minicpmv2.genai_vision import GenaiResampler, VisionEmbeddings, grid_of, resize_weights
from ovexport.models.minicpmv2.parts import load_image_encoder
from ovexport.models.minicpmv2.resampler import sincos_2d as torch_sincos_2d
from ovexport.models.minicpmv2.synth import write_synthetic_checkpoint
from ovexport.models.minicpmv2.vision import vision_features

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    ckpt = write_synthetic_checkpoint(tmp_path_factory.mktemp("ckpt"), "tiny", seed=5)
    return ckpt, load_image_encoder(Path(ckpt))


@pytest.mark.parametrize("out", [1, 2, 5, 13, 26, 27, 28, 32, 57, 70, 101])
def test_resize_weights_are_torch_antialiased_bicubic(out):
    table = torch.randn(1, 3, 27, 27, dtype=torch.float64)
    want = F.interpolate(table, size=(out, 27), mode="bicubic", antialias=True, align_corners=False)[0, :, :, :]
    w = resize_weights(torch.arange(out), torch.tensor(out), 27).to(torch.float64)   # [out, 27]
    got = torch.einsum("ra,cab->crb", w, table[0])
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("grid", [(1, 1), (1, 7), (7, 1), (32, 32), (18, 57), (3, 1024), (27, 27)])
def test_grid_is_read_back_from_genais_mask_and_position_ids(grid):
    h, w = grid
    length = h * w + 40                                   # padded, as genai pads to the batch's longest image
    mask = torch.zeros(1, 1, length)
    mask[0, 0, :h * w] = 1
    pos = torch.zeros(1, length, dtype=torch.int64)
    pos[0, :h * w] = torch.from_numpy(vision_position_ids(h, w))
    n, width, height = grid_of(mask, pos)
    assert (int(n), int(width), int(height)) == (h * w, w, h)


def test_padded_batch_of_grids_equals_each_image_alone(encoder):
    _, enc = encoder
    ve, rs = VisionEmbeddings(enc.vpm).eval(), GenaiResampler(enc.resampler).eval()
    grids = [(32, 32), (27, 27), (1, 1), (18, 57), (40, 3)]
    imgs = [torch.randn(3, 14 * h, 14 * w) for h, w in grids]
    lengths = [h * w for h, w in grids]
    longest = max(lengths)
    pixels = torch.zeros(len(grids), 3, 14, 14 * longest)
    mask = torch.zeros(len(grids), 1, longest)
    pos = torch.zeros(len(grids), longest, dtype=torch.int64)
    for i, (img, (h, w)) in enumerate(zip(imgs, grids)):
        strip = torch.from_numpy(patch_strip(img[None].numpy(), 14))[0]
        pixels[i, :, :, :strip.shape[-1]] = strip
        mask[i, 0, :h * w] = 1
        pos[i, :h * w] = torch.from_numpy(vision_position_ids(h, w))
    with torch.no_grad():
        feats = ve(pixels, mask, pos)
        assert torch.isfinite(feats).all()                # padding never turns into NaN through attention
        for i, (img, (h, w)) in enumerate(zip(imgs, grids)):
            alone = vision_features(enc.vpm, img[None])[0]
            assert torch.allclose(feats[i, :h * w], alone, atol=1e-4), grids[i]
            table = torch.zeros(longest, 1, enc.resampler.embed_dim)
            table[:h * w, 0] = torch_sincos_2d(enc.resampler.embed_dim, h, w)
            padding = torch.ones(1, longest)
            padding[0, :h * w] = 0
            resampled = rs(feats[i:i + 1], table, padding)[0]
            assert torch.allclose(resampled, enc(img[None], torch.tensor([h, w]))[0], atol=1e-4), grids[i]


def test_numpy_inputs_are_the_model_tables():
    assert np.allclose(sincos_2d(64, 5, 7), torch_sincos_2d(64, 5, 7).numpy(), atol=1e-6)
    feats = np.zeros((2, 35, 8), np.float32)
    x = resampler_inputs(feats, (5, 7), 64)
    assert x["pos_embed"].shape == (35, 2, 64) and not x["key_padding_mask"].any()
    img = np.arange(2 * 3 * 28 * 42, dtype=np.float32).reshape(2, 3, 28, 42)
    strip = patch_strip(img, 14)                          # [2, 3, 14, 6 patches x 14]
    assert strip.shape == (2, 3, 14, 6 * 14)
    assert np.array_equal(strip[1, 2, :, 14 * 4:14 * 5], img[1, 2, 14:28, 14:28])   # patch (row 1, col 1)


def test_genai_prompt_differs_only_by_the_slice_wrappers(encoder):
    from PIL import Image

    from ovexport.models.minicpmv2.prompt import encode_chat
    from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer

    ckpt, _ = encoder
    tok = MiniCPMVTokenizer.from_dir(Path(ckpt))
    msgs = [{"role": "user", "content": "What is it?"}]
    sliced = encode_chat(tok, msgs, Image.new("RGB", (896, 448)), query_num=4)
    laid = genai_prepared(sliced, tok, 4)
    assert sliced.grid == (2, 1)
    assert "<slice><unk><unk><unk><unk></slice><slice><unk><unk><unk><unk></slice>\nWhat is it?" in laid.prompt
    assert len(laid.input_ids) == len(sliced.input_ids) - 2
    assert (laid.image_bounds[:, 1] - laid.image_bounds[:, 0]).tolist() == [4, 4, 4]
    assert [tok.decode([int(laid.input_ids[s - 1])], skip_special_tokens=False) for s, _ in laid.image_bounds] == \
        ["<image>", "<slice>", "<slice>"]


@pytest.mark.parametrize("size, v2, genai", [
    # 427 / 14 = 30.5 after the upscale: Python rounds half to even (420), genai's std::round away (434)
    ((64, 70), ((420, 462), None, None), ((434, 462), None, None)),
    # 703x600, cut 2x2: the source one patch wider in genai (a .5 rounded the other way)
    ((703, 600), ((476, 420), (2, 2), (490, 420)), ((490, 420), (2, 2), (490, 420))),
    ((1344, 896), ((546, 364), (3, 2), (448, 448)), ((546, 364), (3, 2), (448, 448))),
])
def test_genai_slicer_arithmetic(size, v2, genai):
    from ovexport.models.minicpmv2.slicing import slice_sizes

    assert slice_sizes(size) == v2 and slice_sizes(size, genai=True) == genai
