"""Full-size runs (marker ``slow``, excluded from the default run and CI): the synthetic full-size MiniCPM-V-2
(3.43B random parameters in the real shapes) through ``recipes/synthetic-full-minicpmv2-int4.yaml``.

``OVEXPORT_FULL_ROOT=<output root>`` reuses a bundle built there (``ovexport run
recipes/synthetic-full-minicpmv2-int4.yaml --set output.root=<root>``); an up-to-date build is only re-checked
(seconds), a missing or stale one is (re)built there. Without it, the bundle is built in a temporary directory
(15-20 min on an idle 2-core machine, ~9 GB peak memory, ~12 GB of disk). See the README for durations.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# the full-size build, validation and bench take tens of minutes: above the suite's 900 s per-test timeout
pytestmark = [pytest.mark.slow, pytest.mark.timeout(4 * 3600)]

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "synthetic-full-minicpmv2-int4.yaml"
NAME, VERSION = "synthetic-full-minicpmv2-int4", "0.1.0"
BUILD_STEPS = ("convert_text_embeddings", "convert_llm", "make_stateful", "convert_image_encoder", "compress",
               "validate")
BUILD_BUDGET = 8e9    # issue 18: every step of the build under 8 GB (BENCHMARKS.md: convert_llm peaks at 6.7 GB)
MEMORY_BUDGET = 10e9  # issue 2: the runtime's processes under 10 GB


def ovexport(*args: str, timeout: float) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "ovexport.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def full_root(tmp_path_factory) -> Path:
    given = os.environ.get("OVEXPORT_FULL_ROOT")
    root = Path(given).expanduser().absolute() if given else tmp_path_factory.mktemp("full-dist")
    p = ovexport("run", str(RECIPE), "--set", f"output.root={root}", timeout=3 * 3600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    return root


@pytest.fixture(scope="session")
def full_bundle(full_root) -> Path:
    bundle = full_root / NAME / VERSION
    assert (bundle / "manifest.json").is_file()
    return bundle


def test_full_size_build_keeps_every_step_under_8_gb(full_root):
    lock = json.loads((full_root / ".work" / NAME / "ovexport.lock.json").read_text())
    peaks = {s: lock["steps"][s]["peak_rss_bytes"] for s in BUILD_STEPS}
    assert all(p > 1e9 for p in peaks.values()), peaks        # measured: a full-size part is GBs
    over = {s: f"{p / 1e9:.2f} GB" for s, p in peaks.items() if p >= BUILD_BUDGET}
    assert not over, f"build steps over {BUILD_BUDGET / 1e9:.0f} GB: {over}"


def test_full_size_bundle_revalidates(full_bundle):
    """`ovexport validate`: re-hash every file, then every parity check again against the checkpoint, with
    the recipe's gates (end to end is measured, not gated, on random weights)."""
    p = ovexport("validate", str(full_bundle), timeout=3600)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    assert "validation not gated: end_to_end (token_agreement, first_divergence measured" in p.stdout
    report = json.loads((full_bundle / "validation.json").read_text())
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status == {"text_embeddings": "passed", "image_encoder": "passed", "llm": "passed",
                      "end_to_end": "not_gated"}


def test_full_size_bench_smoke_with_notebook_baseline(full_bundle):
    p = ovexport("bench", str(full_bundle), "--runs", "1", "--warmup", "1", "--max-new-tokens", "8",
                 "--baseline", "notebook", "--json", timeout=3600)
    assert p.returncode == 0, p.stderr[-4000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    for name, case in out["cases"].items():
        assert case["new_tokens"] == 8 and case["ttft_ms"] > 0 and case["decode_tokens_per_s"] > 0, name
        base = out["baseline"]["cases"][name]
        assert base["new_tokens"] == 8 and base["prompt_tokens"] == case["prompt_tokens"]
        assert all(v is not None and v > 0 for v in out["baseline"]["ratios"][name].values()), name
    assert out["cases"]["1344x896"]["encoder_calls"] == 2 and out["baseline"]["cases"]["1344x896"]["encoder_calls"] == 7
    # the baseline runs in its own process: each process holds one set of compiled models and stays under the
    # project's 10 GB (ours 6.0-6.4 GB with bf16 compute on AVX512; ~8 GB with f32 compute on AVX2-only CPUs)
    assert out["peak_rss_mb"] < MEMORY_BUDGET / 2**20 and out["baseline"]["peak_rss_mb"] < MEMORY_BUDGET / 2**20
