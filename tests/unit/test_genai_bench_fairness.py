"""``bench --baseline genai`` times prefills, not prefix-cache hits: bench repeats one request, and VLMPipeline's
prefix cache (on by default) would serve runs 2+ from run 1's KV cache."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ovexport.runtime import genai_runtime

pytestmark = pytest.mark.unit


class _SchedulerConfig:
    enable_prefix_caching = True


def _fake_genai(made: list):
    def vlm(path, device, **kw):
        made.append(kw)
        gen = SimpleNamespace(stop_token_ids={2}, eos_token_id=2)
        return SimpleNamespace(get_generation_config=lambda: gen)
    return SimpleNamespace(SchedulerConfig=_SchedulerConfig, VLMPipeline=vlm)


def test_the_bench_baseline_turns_genais_prefix_cache_off(monkeypatch):
    made: list = []
    monkeypatch.setattr(genai_runtime, "_genai", lambda: _fake_genai(made))
    genai_runtime.GenaiServer("bundle", "CPU", {"NUM_STREAMS": "1"})
    (kw,) = made
    assert kw["NUM_STREAMS"] == "1" and kw["scheduler_config"].enable_prefix_caching is False


def test_a_genai_pipeline_keeps_genais_default_otherwise(monkeypatch):
    made: list = []
    monkeypatch.setattr(genai_runtime, "_genai", lambda: _fake_genai(made))
    genai_runtime.GenaiPipeline("bundle", "CPU", {"NUM_STREAMS": "1"})
    assert made == [{"NUM_STREAMS": "1"}]
