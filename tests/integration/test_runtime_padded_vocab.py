"""Issue 10: the runtime never crashes on what a model generates. With a padded vocabulary (the model's
vocab_size larger than the tokenizer's pieces), ids past the pieces decode to nothing, with one warning."""
from __future__ import annotations

import warnings

import pytest

from ovexport.models.minicpmv2.synth_tokenizer import MIN_VOCAB_SIZE, write_tokenizer
from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer, UnknownTokenWarning
from ovexport.runtime.generation import GenerationConfig as G

from runtime_fixtures import rt_bundle, rt_pipe  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def padded_pipe(rt_pipe, tmp_path, monkeypatch):
    """The tiny bundle's pipeline (1024-id LLM) decoding with a tokenizer of only MIN_VOCAB_SIZE pieces."""
    write_tokenizer(tmp_path, vocab_size=MIN_VOCAB_SIZE, seed=0)
    small = MiniCPMVTokenizer.from_dir(tmp_path)
    assert small.vocab_size < 1024
    monkeypatch.setattr(rt_pipe, "tokenizer", small)
    return rt_pipe


@pytest.mark.parametrize("config", [G(max_new_tokens=24), G(num_beams=2, repetition_penalty=1.2, max_new_tokens=12)],
                         ids=["greedy", "beam"])
def test_generated_ids_beyond_the_tokenizer_decode_to_nothing_with_one_warning(padded_pipe, config):
    n = padded_pipe.tokenizer.vocab_size
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = padded_pipe.chat("Describe this image.", None, config)
    beyond = [t for t in r.token_ids if t >= n]
    assert len(beyond) >= 2, f"the random tiny model generated no two ids past {n}: {r.token_ids}"
    unknown = [w for w in caught if issubclass(w.category, UnknownTokenWarning)]
    assert len(unknown) == 1, [str(w.message) for w in unknown]
    assert r.text == padded_pipe.tokenizer.decode([t for t in r.token_ids if t < n])
