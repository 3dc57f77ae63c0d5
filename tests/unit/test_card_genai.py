"""The model card says how to run the bundle with OpenVINO GenAI, which versions load it, and writes the
compression parameters as the OpenVINO organisation's cards do."""
from __future__ import annotations

import pytest

from ovexport.models.minicpmv2 import publishing
from ovexport.publish.card import render_card

pytestmark = pytest.mark.unit

MANIFEST = {
    "name": "minicpmv2-int4", "version": "0.1.0", "source": {"uri": "hf://openbmb/MiniCPM-V-2"}, "recipe": {},
    "validation": None,
    "files": {f"openvino_{n}_model.xml": {} for n in ("language", "text_embeddings", "vision_embeddings",
                                                          "resampler")},
    "compression": {
        "llm": {"policy": {"mode": "int4_sym", "group_size": 64, "ratio": 0.6, "all_layers": False,
                           "awq": False},
                "weights": {"int4": {"layers": 172}, "int8": {"layers": 109}, "float": {"layers": 0}}},
        "image_encoder": {"policy": {"mode": "int8_static", "preset": "performance"},
                          "calibration": {"source": "builtin", "items": 16}},
        "text_embeddings": {"policy": None},
    },
}


def test_card_runs_the_bundle_with_openvino_genai_and_names_the_versions():
    card = render_card(MANIFEST, publishing, "org/minicpmv2-int4")
    assert "### Running with OpenVINO GenAI" in card and "### Running with ovexport" in card
    assert 'ov_genai.VLMPipeline("minicpmv2-int4", "CPU")' in card and "pipe.start_chat()" in card
    assert "### Compatibility" in card
    assert f"| {publishing.GENAI_EXACT_FROM} and later |" in card and publishing.GENAI_LOADS_FROM in card
    # the IRs the bundle holds, from its file list
    assert "`openvino_vision_embeddings_model`" in card and "`openvino_resampler_model`" in card


def test_card_writes_the_compression_parameters_as_openvino_cards_do():
    card = render_card(MANIFEST, publishing, "org/minicpmv2-int4")
    llm = card[card.index("`llm`: `nncf.compress_weights` with"):]
    assert llm.splitlines()[1:4] == ["* mode: **INT4_SYM**", "* ratio: **0.6**", "* group_size: **64**"]
    assert "`image_encoder`: `nncf.quantize` with" in card and "* calibration: **builtin**, 16 items" in card
    assert "`text_embeddings`: `nncf" not in card   # not compressed: no parameters
