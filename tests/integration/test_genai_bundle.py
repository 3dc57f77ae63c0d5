"""openvino.genai's VLMPipeline runs an ovexport bundle and answers as ovexport does.

On the tiny bundle (precisions pinned to f32 on both sides), greedy: an image that is not sliced gives the same
tokens through ``VLMPipeline.generate`` as through ``ovexport chat --greedy``; a sliced image gives the tokens our
runtime gives on the prompt genai builds (``genai_prepared``: genai lays slices out as MiniCPM-V-2.6 does, the one
documented deviation, docs/genai.md); a second chat turn (``start_chat``) matches ours too.
"""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from PIL import Image

from runtime_fixtures import *  # noqa: F401,F403

pytestmark = pytest.mark.integration

QUESTION = "What is in the image?"
MAX_NEW = 12


@pytest.fixture(scope="module")
def genai_pipe(rt_bundle):
    from ovexport.runtime.genai_runtime import GenaiPipeline

    return GenaiPipeline(rt_bundle, "CPU", F32)


def _image(tmp_path, w: int, h: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    path = tmp_path / f"{w}x{h}.png"
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _ours(rt_pipe, prepared, max_new: int = MAX_NEW) -> list[int]:
    from ovexport.runtime.generation import greedy_decode

    eos = set(rt_pipe.adapter.eos_ids)
    tokens = greedy_decode(rt_pipe.models, rt_pipe.prefill_embeddings(prepared), rt_pipe.embed_text, eos, max_new)
    return [t for t in tokens if t not in eos]


@pytest.mark.parametrize("size", [(448, 448), (300, 200)], ids=["448x448", "300x200-upscaled"])
def test_unsliced_image_same_tokens_as_ovexport_chat_greedy(rt_bundle, genai_pipe, tmp_path, size):
    path = _image(tmp_path, *size)
    out = subprocess.run(ovexport_cmd("chat", str(rt_bundle), QUESTION, "--image", str(path), "--greedy", "--json",
                                      "--max-new-tokens", str(MAX_NEW), *F32_FLAGS),
                         capture_output=True, text=True, check=True)
    ours = json.loads(out.stdout)
    answer = genai_pipe.generate(QUESTION, Image.open(path), max_new_tokens=MAX_NEW)
    eos = {2}
    assert answer.token_ids == [t for t in ours["token_ids"] if t not in eos]
    assert answer.text == ours["text"]
    assert len(answer.token_ids) > 0


@pytest.mark.parametrize("size", [(1344, 896), (703, 600)], ids=["1344x896", "703x600-rounding"])
def test_sliced_image_is_what_our_runtime_answers_on_genais_input(rt_pipe, genai_pipe, tmp_path, size):
    """1344x896 is cut 3x2, 703x600 2x2 (a size genai's slicer rounds otherwise than V-2's): genai answers exactly
    what our runtime answers on what genai feeds the model (its slicer's sizes, its slice layout)."""
    from ovexport.models.registry import family_for
    from ovexport.runtime.genai_runtime import genai_prepare

    path = _image(tmp_path, *size, seed=1)
    msgs = [{"role": "user", "content": QUESTION}]
    image = Image.open(path).convert("RGB")
    v2 = rt_pipe.adapter.prepare(msgs, image)
    laid_out = genai_prepare(family_for(rt_pipe.bundle), rt_pipe.adapter, msgs, image)
    tok = rt_pipe.adapter.tokenizer
    # the deviation, exactly: each slice wrapped in <slice></slice> instead of <image></image> inside one
    # <slice>...</slice>; same number of feature slots, two tokens fewer
    slices = len(v2.pixel_values) - 1
    assert slices == {(1344, 896): 6, (703, 600): 4}[size] and laid_out.grid == v2.grid
    assert len(laid_out.input_ids) == len(v2.input_ids) - 2
    assert (laid_out.image_bounds[:, 1] - laid_out.image_bounds[:, 0]).tolist() == [64] * (slices + 1)
    assert int((laid_out.input_ids == tok.slice_start_id).sum()) == slices
    assert int((v2.input_ids == tok.slice_start_id).sum()) == 1
    if size == (703, 600):   # genai's source image is one patch wider
        assert [p.shape for p in laid_out.pixel_values] != [p.shape for p in v2.pixel_values]

    answer = genai_pipe.generate(QUESTION, Image.open(path), max_new_tokens=MAX_NEW)
    assert answer.token_ids == _ours(rt_pipe, laid_out)


def test_not_sliced_input_is_the_same_for_genai(rt_pipe, tmp_path):
    from ovexport.models.registry import family_for
    from ovexport.runtime.genai_runtime import genai_prepare

    msgs = [{"role": "user", "content": QUESTION}]
    image = Image.open(_image(tmp_path, 448, 448)).convert("RGB")
    ours, genai = rt_pipe.adapter.prepare(msgs, image), genai_prepare(family_for(rt_pipe.bundle), rt_pipe.adapter,
                                                                       msgs, image)
    assert np.array_equal(ours.input_ids, genai.input_ids) and np.array_equal(ours.pixel_values[0],
                                                                              genai.pixel_values[0])


def test_second_chat_turn_same_tokens(rt_pipe, genai_pipe, tmp_path):
    from ovexport.runtime.generation import GenerationConfig
    from ovexport.runtime.pipeline import Conversation

    img = Image.open(_image(tmp_path, 448, 448, seed=2)).convert("RGB")
    conv = Conversation(image=img)
    eos = set(rt_pipe.adapter.eos_ids)
    ours = [rt_pipe.chat(q, conversation=conv, config=GenerationConfig(max_new_tokens=MAX_NEW))
            for q in (QUESTION, "And what else?")]
    genai_pipe.start_chat()
    try:
        first = genai_pipe.generate(QUESTION, img, max_new_tokens=MAX_NEW)
        second = genai_pipe.generate("And what else?", None, max_new_tokens=MAX_NEW)
    finally:
        genai_pipe.finish_chat()
    assert first.token_ids == [t for t in ours[0].token_ids if t not in eos]
    assert second.token_ids == [t for t in ours[1].token_ids if t not in eos]


def test_bundle_holds_what_vlmpipeline_opens(rt_bundle):
    config = json.loads((rt_bundle / "config.json").read_text())
    assert config["model_type"] == "minicpmv" and config["use_image_id"] is False
    pre = json.loads((rt_bundle / "preprocessor_config.json").read_text())
    assert pre["norm_mean"] == [0.5] * 3 and pre["norm_std"] == [0.5] * 3
    for name in ("language", "text_embeddings", "vision_embeddings", "resampler"):
        assert (rt_bundle / f"openvino_{name}_model.xml").is_file()
    assert not (rt_bundle / "openvino_image_encoder_model.xml").exists()
