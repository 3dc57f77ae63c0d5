"""`ovexport compare` on the tiny TRAINED model, whose answers can be right or wrong: the ranking of
compression settings means something here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ovexport.cli import cli

# slow tier: the trained fixture takes ~7 min of CPU (2 cores; ~6.5 min of one core per seed) to train once (cached afterwards)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FP32 = str(REPO / "recipes" / "tiny-trained-minicpmv2-fp32.yaml")
ARGS = ["--variant", "compression.llm={mode: int8_asym}",
        "--variant", "compression.llm={mode: int4_sym, group_size: 16, ratio: 1.0}",
        "--variant", "compression.llm={mode: int4_sym, group_size: 32, ratio: 0.6}",
        "--limit", "40", "--max-new-tokens", "6"]


def ovexport(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def trained_compare(tmp_path_factory, trained_checkpoint):
    root = tmp_path_factory.mktemp("dist")
    r = ovexport("compare", FP32, "--set", f"output.root={root}", *ARGS)
    assert r.exit_code == 0, r.output
    return root, json.loads((root / "compare" / "tiny-trained-minicpmv2-fp32" / "compare.json").read_text())


def test_fp32_ranks_first_and_int4_ratio_1_diverges_more_than_int8(trained_compare):
    _, res = trained_compare
    assert res["evalset"]["name"] == "heldout" and res["evalset"]["has_answers"] and not res["random_weights"]
    order = [r["label"] for r in res["rows"]]
    assert order[:2] == ["reference", "base"], order
    rows = {r["label"]: r for r in res["rows"]}
    fp32, ref = rows["base"], rows["reference"]
    assert fp32["kl_max"] < 1e-4 and fp32["exact_match"] == 1.0
    assert fp32["task_accuracy"] == pytest.approx(ref["task_accuracy"])
    int8 = rows["llm={mode: int8_asym}"]
    int4 = rows["llm={mode: int4_sym, group_size: 16, ratio: 1.0}"]
    assert int4["kl_mean"] > 3 * int8["kl_mean"] > 0
    assert int4["llm_mb"] < int8["llm_mb"] < fp32["llm_mb"]


def test_rerun_reads_the_cached_reference_and_every_variant(trained_compare):
    root, first = trained_compare
    r = ovexport("compare", FP32, "--set", f"output.root={root}", *ARGS)
    assert r.exit_code == 0, r.output
    res = json.loads((root / "compare" / "tiny-trained-minicpmv2-fp32" / "compare.json").read_text())
    assert res["reference"]["cached"] is True and r.output.count(": up to date (variants/") == 4
    assert [x["kl_mean"] for x in res["rows"]] == [x["kl_mean"] for x in first["rows"]]
