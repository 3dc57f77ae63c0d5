"""Generated data: the registry of synthetic sources (what ``synthetic://<name>`` finds beyond a family's own sizes)
and the one synthetic test image."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ovexport.models import registry
from ovexport.recipe.source import parse_source
from ovexport.synthetic import images
from ovexport.synthetic import sources as synthetic_sources

pytestmark = pytest.mark.unit


@pytest.fixture
def extra_source(monkeypatch):
    """A source registered for the test only (the built-in ones loaded first, so it is removed afterwards)."""
    written = []

    def write(out, seed=0, progress=None):
        written.append((out, seed))
        return out

    synthetic_sources.sources()
    src = synthetic_sources.SyntheticSource(name="test-fixture", family="minicpmv2", trains="full", write=write,
                                            code=("ovexport.synthetic.vqa_task",))
    monkeypatch.setitem(synthetic_sources._SOURCES, src.name, src)
    return src, written


def test_a_registered_source_is_a_synthetic_size_of_its_family(extra_source, tmp_path):
    src, written = extra_source
    assert "test-fixture" in registry.synthetic_sizes()
    assert parse_source("synthetic://test-fixture?seed=2").size == "test-fixture"
    assert registry.family_of_synthetic("test-fixture") is registry.get_family("minicpmv2")
    assert synthetic_sources.trained_fixtures("minicpmv2")["full"] is src
    assert "test-fixture" not in synthetic_sources.heldout_sources()
    assert registry.write_synthetic("test-fixture", tmp_path, seed=4) == tmp_path and written == [(tmp_path, 4)]
    # its fingerprint holds its own code beside the family's synthetic code
    assert registry.synthetic_code_digest("test-fixture") != registry.synthetic_code_digest("tiny")


def test_a_name_belongs_to_one_family(extra_source):
    src, _ = extra_source
    assert synthetic_sources.register_source(src) is src          # registering it again is harmless
    with pytest.raises(ValueError, match="already registered"):
        synthetic_sources.register_source(dataclasses.replace(src, family="toyvlm"))


def test_one_synthetic_image_generator():
    from ovexport.runtime.bench_inputs import synthetic_image as bench_image
    from ovexport.validators import end_to_end, llm

    assert end_to_end.synthetic_image is images.synthetic_image and llm.synthetic_image is images.synthetic_image
    a, b = bench_image(64, 48, seed=3), images.synthetic_image(np.random.default_rng(3), 64, 48)
    assert a.size == (64, 48) and np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(bench_image(64, 48, seed=4)))
