"""Issue 10, figures that hold: ``ovexport bench --baseline notebook`` runs the published notebook's way over
the same IRs in the same run and reports ours / notebook (no timing asserts: the figures are measured, not
tested)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ovexport.cli import cli
from ovexport.runtime.bench_harness import ratios

from runtime_fixtures import F32_FLAGS, rt_bundle  # noqa: F401

pytestmark = pytest.mark.integration


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_notebook_baseline_runs_side_by_side_and_ratios_are_reported(rt_bundle):
    r = run("bench", rt_bundle, "--runs", "2", "--warmup", "0", "--max-new-tokens", "4", "--baseline", "notebook",
            "--json", *F32_FLAGS)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    base = out["baseline"]
    assert base["name"] == "notebook" and set(base["cases"]) == set(out["cases"]) == {"448x448", "1344x896"}
    # the notebook encodes each of the 7 pieces alone; ours batches the 6 same-size slices
    assert base["cases"]["1344x896"]["encoder_calls"] == 7 and out["cases"]["1344x896"]["encoder_calls"] == 2
    assert base["cases"]["448x448"]["encoder_calls"] == 1
    for name, c in base["cases"].items():
        assert c["same_tokens"] is True, name          # same IRs, same greedy search, same answer
        assert c["new_tokens"] == 4 and c["prompt_tokens"] == out["cases"][name]["prompt_tokens"]
        assert len(c["samples"]["ttft_ms"]) == 2 and all(x > 0 for x in c["samples"]["ttft_ms"])
        q = base["ratios"][name]
        assert set(q) == {"vision", "ttft", "decode_tokens_per_s"} and all(v > 0 for v in q.values())
        assert q == ratios(out["cases"][name], c)
    assert out["cpu"]["model"] and isinstance(out["cpu"]["flags"], list)
    # its own process, its own peak (a process with the IRs loaded holds tens of MB at least)
    assert base["peak_rss_mb"] > 50 and out["peak_rss_mb"] > 50


def test_bench_table_shows_the_baseline_ratios(rt_bundle):
    r = run("bench", rt_bundle, "--runs", "1", "--warmup", "0", "--max-new-tokens", "2", "--baseline", "notebook")
    assert r.exit_code == 0, r.output
    assert "baseline: notebook" in r.output and "TTFT ours/base" in r.output
    assert "flags" in r.output


def test_ratios_are_ours_over_the_baseline():
    ours = {"vision_ms": 50.0, "ttft_ms": 80.0, "decode_tokens_per_s": 12.0}
    base = {"vision_ms": 100.0, "ttft_ms": 100.0, "decode_tokens_per_s": 8.0}
    assert ratios(ours, base) == {"vision": 0.5, "ttft": 0.8, "decode_tokens_per_s": 1.5}
    assert ratios(ours, {**base, "vision_ms": 0.0})["vision"] is None


def test_another_bundle_as_the_baseline_is_an_a_b_run_through_our_runtime(rt_bundle):
    # the same bundle on both sides: same answers and the same encoder calls, ratios present
    r = run("bench", rt_bundle, "--runs", "1", "--warmup", "0", "--max-new-tokens", "3", "--baseline", rt_bundle,
            "--json", *F32_FLAGS)
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    base = out["baseline"]
    assert base["name"] == str(rt_bundle) and base["peak_rss_mb"] > 50
    for name, c in base["cases"].items():
        assert c["same_tokens"] is True and c["encoder_calls"] == out["cases"][name]["encoder_calls"], name
        assert all(v > 0 for v in base["ratios"][name].values()), name


def test_unknown_baseline_is_one_line_with_the_fix(rt_bundle, tmp_path):
    r = run("bench", rt_bundle, "--runs", "1", "--baseline", str(tmp_path / "nope"))
    assert r.exit_code == 2
    err = [line for line in r.output.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "nor a bundle directory" in err[0] and "fix:" in err[0], r.output
