"""Issue 10: no check passes by default. A check whose recipe thresholds are all null is "not gated", in the
report, the table, the manifest's summary and as a warning of ``ovexport check``."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from ovexport.cli import cli
from ovexport.recipe.schema import ValidationSpec
from ovexport.validators.base import CheckResult, gate
from ovexport.validators.gating import apply_gating, ungated_checks, ungated_warnings
from ovexport.validators.runner import failure_lines, print_report, raise_if_failed

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def spec(thresholds: dict | None = None) -> ValidationSpec:
    return ValidationSpec.model_validate({"thresholds": thresholds or {}})


def test_a_check_without_gates_is_not_gated_not_passed():
    r = CheckResult.build("end_to_end", "bundle", {"token_agreement": 0.1},
                          [gate("token_agreement", 0.1, None, "min")])
    assert r.status == "not gated" and r.passed is None and r.to_dict()["status"] == "not gated"


def test_gated_checks_pass_or_fail_on_their_gates():
    ok = CheckResult.build("llm", "llm", {"x": 0.0}, [gate("x", 0.0, 1e-3, "max")])
    bad = CheckResult.build("llm", "llm", {"x": 1.0}, [gate("x", 1.0, 1e-3, "max")])
    assert (ok.status, ok.passed) == ("passed", True)
    assert (bad.status, bad.passed) == ("failed", False)


def test_defaults_gate_every_check_and_null_blocks_are_listed():
    assert ungated_checks(spec()) == []
    s = spec({"end_to_end": {"min_token_agreement": None},
              "llm": {"max_abs_diff": None, "min_cosine": None, "min_top1_agreement": None, "max_kl": None}})
    assert ungated_checks(s) == ["llm", "end_to_end"]
    # one threshold left on keeps a check gated
    assert ungated_checks(spec({"llm": {"max_abs_diff": None, "min_top1_agreement": None, "max_kl": 0.5}})) == []


def test_a_check_gated_only_by_its_own_reset_gate_is_not_gated_unless_that_gate_fails():
    s = spec({"llm": {"max_abs_diff": None, "min_cosine": None, "min_top1_agreement": None, "max_kl": None}})
    held = CheckResult.build("llm", "llm", {"reset_max_abs_diff": 0.0},
                             [gate("reset_max_abs_diff", 0.0, 0.0, "max")])
    assert apply_gating(held, s).status == "not gated"
    broke = CheckResult.build("llm", "llm", {"reset_max_abs_diff": 0.5},
                              [gate("reset_max_abs_diff", 0.5, 0.0, "max")])
    assert apply_gating(broke, s).status == "failed"


def _report(checks: list[CheckResult]) -> dict:
    rep = {"passed": all(c.status != "failed" for c in checks), "ov_config": {"INFERENCE_PRECISION_HINT": "f32"},
           "device": "CPU", "duration_s": 1.0, "checks": [c.to_dict() for c in checks],
           "not_gated": [c.name for c in checks if c.status == "not gated"]}
    rep["failures"] = failure_lines(rep)
    return rep


def test_report_table_says_not_gated_and_nothing_fails():
    rep = _report([CheckResult.build("text_embeddings", "text_embeddings", {"max_abs_diff": 0.0},
                                     [gate("max_abs_diff", 0.0, 0.0, "max")]),
                   CheckResult.build("end_to_end", "bundle", {"token_agreement": 0.1}, [])])
    assert rep["passed"] and rep["failures"] == []
    raise_if_failed(rep)
    out = io.StringIO()
    print_report(rep, Console(file=out, width=120))
    text = out.getvalue()
    assert "not gated" in text and "(end_to_end not gated)" in text
    assert "FAIL" not in text


def test_check_warns_about_a_recipe_that_leaves_a_part_ungated(tmp_path):
    recipe = ROOT / "recipes" / "tiny-minicpmv2-int4.yaml"   # end_to_end is measured, not gated
    r = CliRunner().invoke(cli, ["check", str(recipe)])
    assert r.exit_code == 0, r.output
    assert "warning:" in r.output and "validation.thresholds.end_to_end" in r.output
    assert "1 recipe(s) valid" in r.output
    gated = CliRunner().invoke(cli, ["check", str(recipe), "--set",
                                     "validation.thresholds.end_to_end.min_token_agreement=0.5"])
    assert gated.exit_code == 0 and "warning:" not in gated.output, gated.output


def test_warning_names_the_recipe():
    w = ungated_warnings(spec({"end_to_end": {"min_token_agreement": None}}), "r.yaml: tiny")
    assert w == ["r.yaml: tiny: validation.thresholds.end_to_end: every threshold is null, so the end_to_end check "
                 "is measured but not gated (it can never fail); set at least one threshold to gate it"]
