"""Chat prompt text, image bounds and encode_chat of MiniCPM-V-2."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ovexport.errors import InputError
from ovexport.models.minicpmv2.prompt import (
    PreparedInput, build_prompt, encode_chat, grid_placeholder, image_bounds, image_placeholder,
)
from ovexport.models.minicpmv2.slicing import SlicedImage, slice_image, to_pixel_values
from ovexport.models.minicpmv2.synth_tokenizer import write_tokenizer
from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer

pytestmark = pytest.mark.unit

PH = "<image>" + "<unk>" * 64 + "</image>"


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    d = tmp_path_factory.mktemp("tok")
    write_tokenizer(d, vocab_size=1024)
    return MiniCPMVTokenizer.from_dir(d)


def test_placeholders():
    assert image_placeholder() == PH
    assert image_placeholder(4) == "<image><unk><unk><unk><unk></image>"
    # grid (cols=3, rows=2): rows of 3 placeholders joined by "\n", wrapped in <slice></slice>
    assert grid_placeholder((3, 2), 64) == "<slice>" + PH * 3 + "\n" + PH * 3 + "</slice>"
    assert grid_placeholder((1, 3), 2) == (
        "<slice><image><unk><unk></image>\n<image><unk><unk></image>\n<image><unk><unk></image></slice>")


def test_prompt_no_slices():
    s = slice_image(Image.new("RGB", (448, 448)))
    prompt, images = build_prompt([{"role": "user", "content": "What is this?"}], s)
    assert prompt == "<用户>" + PH + "\nWhat is this?<AI>"
    assert images == [s.source]


def test_prompt_sliced_image():
    s = slice_image(Image.new("RGB", (1344, 896)))  # grid (3, 2)
    prompt, images = build_prompt([{"role": "user", "content": "Describe."}], s)
    expected = ("<用户>" + PH + "<slice>" + PH * 3 + "\n" + PH * 3 + "</slice>" + "\nDescribe.<AI>")
    assert prompt == expected
    assert images == [s.source] + s.patches[0] + s.patches[1]


def test_prompt_slice_mode_off_uses_source_only():
    s = slice_image(Image.new("RGB", (1344, 896)))
    prompt, images = build_prompt([{"role": "user", "content": "Q"}], s, query_num=2, slice_mode=False)
    assert prompt == "<用户><image><unk><unk></image>\nQ<AI>"
    assert images == [s.source]


def test_prompt_multi_turn():
    s = slice_image(Image.new("RGB", (448, 448)))
    msgs = [{"role": "user", "content": "What is it?"}, {"role": "assistant", "content": "A cat."},
            {"role": "user", "content": "What colour?"}]
    prompt, images = build_prompt(msgs, s, query_num=1)
    assert prompt == "<用户><image><unk></image>\nWhat is it?<AI>A cat.<用户>What colour?<AI>"
    assert len(images) == 1
    # text only: no placeholder, no images
    prompt, images = build_prompt(msgs, None)
    assert prompt == "<用户>What is it?<AI>A cat.<用户>What colour?<AI>" and images == []


@pytest.mark.parametrize("msgs,match", [
    ([], "no message"),
    ([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}], "role 'system'"),
    ([{"role": "assistant", "content": "x"}], "first message must be the user's"),
    ([{"role": "user", "content": ["a list"]}], "not text"),
    ([{"role": "user"}], "'role' and 'content'"),
])
def test_prompt_errors(msgs, match):
    with pytest.raises(InputError, match=match):
        build_prompt(msgs, SlicedImage(source=Image.new("RGB", (14, 14))))


def test_assistant_first_allowed_without_image():
    prompt, _ = build_prompt([{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Q"}], None)
    assert prompt == "<AI>Hi<用户>Q<AI>"


def test_image_bounds():
    ids = [1, 5, 101, 0, 0, 0, 102, 7, 111, 101, 0, 0, 0, 102, 101, 0, 0, 0, 102, 112, 9]
    b = image_bounds(ids)
    assert b.dtype == np.int64 and b.tolist() == [[3, 6], [10, 13], [15, 18]]
    assert all(ids[s - 1] == 101 and ids[e] == 102 for s, e in b)
    assert image_bounds(np.array([1, 2, 3])).shape == (0, 2)
    with pytest.raises(InputError):
        image_bounds([1, 101, 0, 0])


def test_encode_chat_sliced(tok):
    img = Image.new("RGB", (1344, 896), (30, 60, 90))
    msgs = [{"role": "user", "content": "What is in the image?"}]
    r = encode_chat(tok, msgs, img)
    assert isinstance(r, PreparedInput)
    assert r.input_ids.dtype == np.int64 and r.input_ids[0] == tok.bos_id and r.input_ids[-1] == tok.ai_id
    assert r.grid == (3, 2)
    assert r.image_bounds.shape == (7, 2)  # source + 6 slices
    assert (r.image_bounds[:, 1] - r.image_bounds[:, 0] == 64).all()
    for s, e in r.image_bounds:
        assert r.input_ids[s - 1] == 101 and r.input_ids[e] == 102 and (r.input_ids[s:e] == 0).all()
    assert [pv.shape for pv in r.pixel_values] == [(3, 364, 546)] + [(3, 448, 448)] * 6
    assert all(pv.dtype == np.float32 for pv in r.pixel_values)
    assert r.tgt_sizes == [(26, 39)] + [(32, 32)] * 6
    assert list(r.input_ids) == tok.encode(r.prompt)
    assert np.count_nonzero(r.input_ids == tok.slice_start_id) == 1
    assert np.count_nonzero(r.input_ids == tok.slice_end_id) == 1


def test_encode_chat_pixel_order(tok):
    # six colour cells: pixel_values[1:] must follow the bounds' order = patches row-major
    arr = np.zeros((896, 1344, 3), np.uint8)
    for k in range(6):
        r, c = divmod(k, 3)
        arr[r * 448:(r + 1) * 448, c * 448:(c + 1) * 448] = 40 * k
    img = Image.fromarray(arr)
    res = encode_chat(tok, [{"role": "user", "content": "Q"}], img)
    s = slice_image(img)
    assert np.array_equal(res.pixel_values[0], to_pixel_values(s.source))
    for k in range(6):
        r, c = divmod(k, 3)
        assert np.array_equal(res.pixel_values[1 + k], to_pixel_values(s.patches[r][c]))
        assert np.allclose(res.pixel_values[1 + k], 40 * k / 255 * 2 - 1, atol=1e-6)


def test_encode_chat_text_only_and_path(tok, tmp_path):
    r = encode_chat(tok, [{"role": "user", "content": "Hello"}])
    assert r.image_bounds.shape == (0, 2) and r.pixel_values == [] and r.grid is None
    assert list(r.input_ids) == tok.encode("<用户>Hello<AI>")
    p = tmp_path / "x.png"
    Image.new("RGB", (448, 448)).save(p)
    r = encode_chat(tok, [{"role": "user", "content": "Hello"}], p)
    assert r.grid is None and r.image_bounds.shape == (1, 2) and r.pixel_values[0].shape == (3, 448, 448)
    with pytest.raises(InputError, match="nope.png"):
        encode_chat(tok, [{"role": "user", "content": "Hello"}], tmp_path / "nope.png")


def test_encode_chat_params_from_config(tok):
    cfg = {"query_num": 4, "slice_mode": True, "max_slice_nums": 9, "scale_resolution": 448, "patch_size": 14}
    r = encode_chat(tok, [{"role": "user", "content": "Q"}], Image.new("RGB", (896, 448)), config=cfg)
    assert r.grid == (2, 1) and r.image_bounds.shape == (3, 2)
    assert (r.image_bounds[:, 1] - r.image_bounds[:, 0] == 4).all()
    # explicit keyword beats config; slice_mode off feeds the image unresized
    r = encode_chat(tok, [{"role": "user", "content": "Q"}], Image.new("RGB", (900, 450)), config=cfg,
                    slice_mode=False)
    assert r.grid is None and [pv.shape for pv in r.pixel_values] == [(3, 450, 900)]


def test_encode_chat_rejects_image_tokens_in_text_and_long_prompts(tok):
    with pytest.raises(InputError, match="placeholders"):
        encode_chat(tok, [{"role": "user", "content": "look <image><unk></image>"}], Image.new("RGB", (448, 448)))
    with pytest.raises(InputError, match="more than the limit"):
        encode_chat(tok, [{"role": "user", "content": "Q"}], Image.new("RGB", (448, 448)), max_inp_length=10)
