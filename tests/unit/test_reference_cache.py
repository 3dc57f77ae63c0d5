"""The reference cache: computed once, read back equal, never trusting a damaged or half-written entry."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovexport.evaluation.reference_cache import ReferenceCache, cache_key

pytestmark = pytest.mark.unit

DOC = {"what": "answers", "checkpoint": "abc", "evalset": "def", "max_new_tokens": 8}


def _values():
    return {"logp": [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones((1, 3), np.float32)],
            "texts": ["red", "2"], "tokens": [[5, 2], [7]], "n": np.int64(3), "arr": np.zeros(4)}


def test_computed_once_then_read_back_equal(tmp_path):
    cache = ReferenceCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return _values()

    first = cache.get_or_compute(DOC, compute)
    again = ReferenceCache(tmp_path).get_or_compute(DOC, compute)
    assert len(calls) == 1
    assert again["texts"] == ["red", "2"] and again["tokens"] == [[5, 2], [7]] and again["n"] == 3
    assert len(again["logp"]) == 2 and all(np.array_equal(a, b) for a, b in zip(first["logp"], again["logp"]))
    assert np.array_equal(again["arr"], np.zeros(4))


def test_another_key_is_another_entry(tmp_path):
    cache = ReferenceCache(tmp_path)
    cache.get_or_compute(DOC, _values)
    assert cache.get({**DOC, "max_new_tokens": 9}) is None
    assert cache_key(DOC) != cache_key({**DOC, "evalset": "xyz"})


def test_damaged_entry_is_recomputed(tmp_path):
    cache = ReferenceCache(tmp_path)
    cache.get_or_compute(DOC, _values)
    (cache.path(cache_key(DOC)) / "arrays.npz").write_bytes(b"not a zip")
    calls = []
    cache.get_or_compute(DOC, lambda: calls.append(1) or _values())
    assert calls == [1]


def test_failed_compute_leaves_no_entry(tmp_path):
    cache = ReferenceCache(tmp_path)

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(DOC, boom)
    assert cache.get(DOC) is None
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))


def test_write_killed_midway_leaves_no_entry(tmp_path, monkeypatch):
    import ovexport.evaluation.reference_cache as rc

    def partial_savez(path, **arrays):
        open(path, "wb").write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(rc.np, "savez", partial_savez)
    with pytest.raises(KeyboardInterrupt):
        ReferenceCache(tmp_path).get_or_compute(DOC, _values)
    monkeypatch.undo()
    assert ReferenceCache(tmp_path).get(DOC) is None
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_disabled_cache_always_computes(tmp_path):
    cache = ReferenceCache(tmp_path, enabled=False)
    calls = []
    for _ in range(2):
        cache.get_or_compute(DOC, lambda: calls.append(1) or _values())
    assert calls == [1, 1] and not any(tmp_path.iterdir())


def test_the_torch_reference_key_leaves_the_metrics_and_the_runtime_out():
    """Scoring code is not reference code: changing how variants are scored keeps the PyTorch reference."""
    from ovexport.engine.code_digest import module_closure
    from ovexport.models.registry import family_code

    entries, registrations = family_code("reference")
    closure = module_closure("ovexport.evaluation.logprobs", *entries, *registrations, stop=registrations)
    assert "ovexport.evaluation.scoring" not in closure
    assert not any(m.startswith("ovexport.runtime") for m in closure)
    from ovexport.evaluation import logprobs, scoring, torch_and_ir_sides
    assert torch_and_ir_sides.log_softmax is logprobs.log_softmax is scoring.log_softmax


def test_a_library_upgrade_is_another_key(monkeypatch):
    """After an upgrade of torch, transformers or OpenVINO, validate and compare recompute the reference."""
    from ovexport.evaluation import reference_cache

    before = cache_key(DOC)
    for lib in ("torch", "transformers", "openvino"):
        real = reference_cache.versions
        monkeypatch.setattr(reference_cache, "versions",
                            lambda *p, lib=lib, real=real: {**real(*p), lib: "99.0"})
        assert cache_key(DOC) != before, lib
        monkeypatch.undo()
    assert cache_key(DOC) == before


def test_a_bundle_reference_key_holds_its_tokenizer_and_config_files(tmp_path):
    from ovexport.evaluation.reference_answers import bundle_key

    class Set:
        digest = "e"

    from ovexport.parts import PARTS

    irs = [f for part in PARTS for f in part.files]
    for name in (*irs, "tokenizer.model", "config.json", "tokenizer_config.json", "manifest.json", "README.md"):
        (tmp_path / name).write_text(name)
    before = bundle_key(tmp_path, Set(), 8, {})
    (tmp_path / "README.md").write_text("another card")       # describes the bundle, decides nothing
    (tmp_path / "manifest.json").write_text("another build")
    assert bundle_key(tmp_path, Set(), 8, {}) == before
    for name in ("tokenizer.model", "config.json", "tokenizer_config.json"):
        (tmp_path / name).write_text("changed " + name)
        key = bundle_key(tmp_path, Set(), 8, {})
        assert key != before, name
        before = key
