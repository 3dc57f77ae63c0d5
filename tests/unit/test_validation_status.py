"""Issues 10 and 18: no check passes by default, and a validation has three states: passed (every part gated and
within its gates), not_gated (naming what has no gate) and failed. These tests call the aggregation the runner
uses (``validators.status.aggregate``), the manifest's reading of old bundles, the card, the publish refusal
and the chat/serve warning."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from ovexport.bundle.manifest import unvalidated_warning, validation_state, validation_summary
from ovexport.cli import cli
from ovexport.errors import BundleError
from ovexport.models.minicpmv2 import publishing
from ovexport.publish.card import render_card
from ovexport.publish.hub import publishable
from ovexport.recipe.validation import ValidationSpec
from ovexport.validators.base import CheckResult, gate
from ovexport.validators.gating import apply_gating, ungated_checks, ungated_warnings
from ovexport.validators.run_checks import failure_lines, print_report, raise_if_failed, verdict
from ovexport.validators.status import aggregate, check_names, phrase, state_of

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PARTS = ("text_embeddings", "image_encoder", "llm", "end_to_end")


def spec(thresholds: dict | None = None) -> ValidationSpec:
    return ValidationSpec.model_validate({"thresholds": thresholds or {}})


def held(name: str, value: float = 0.0) -> CheckResult:
    return CheckResult.build(name, name, {"x": value}, [gate("x", value, 1e-3, "max")])


def ungated(name: str) -> CheckResult:
    return CheckResult.build(name, name, {"token_agreement": 0.1, "first_divergence": 1}, [])


def report(checks: list[CheckResult]) -> dict:
    """A report as ``run_validation`` builds it: the real aggregation over the checks' dicts."""
    rep = {**aggregate([c.to_dict() for c in checks]), "ov_config": {"INFERENCE_PRECISION_HINT": "f32"},
           "device": "CPU", "duration_s": 1.0, "checks": [c.to_dict() for c in checks]}
    rep["failures"] = failure_lines(rep)
    return rep


def test_the_checks_are_one_per_part():
    assert check_names() == PARTS


def test_a_check_without_gates_is_not_gated_not_passed():
    r = ungated("end_to_end")
    assert r.status == "not_gated" and r.passed is None and r.to_dict()["status"] == "not_gated"


def test_gated_checks_pass_or_fail_on_their_gates():
    ok, bad = held("llm"), held("llm", 1.0)
    assert (ok.status, ok.passed) == ("passed", True)
    assert (bad.status, bad.passed) == ("failed", False)


def test_passed_only_when_every_part_is_gated_and_held():
    assert aggregate([held(n).to_dict() for n in PARTS]) == {"status": "passed", "passed": True, "not_gated": []}


def test_one_ungated_part_makes_the_validation_not_gated_and_names_it():
    checks = [held(n) for n in PARTS[:3]] + [ungated("end_to_end")]
    assert aggregate([c.to_dict() for c in checks]) == {"status": "not_gated", "passed": False,
                                                          "not_gated": ["end_to_end"]}


def test_every_gate_off_is_not_gated_with_every_part_named():
    agg = aggregate([ungated(n).to_dict() for n in PARTS])
    assert agg["status"] == "not_gated" and agg["not_gated"] == list(PARTS) and agg["passed"] is False


def test_a_part_whose_check_did_not_run_is_not_gated():
    agg = aggregate([held(n).to_dict() for n in ("text_embeddings", "llm", "end_to_end")])
    assert agg["status"] == "not_gated" and agg["not_gated"] == ["image_encoder"]
    assert aggregate([])["not_gated"] == list(PARTS)


def test_a_failed_gate_fails_whatever_else_is_ungated():
    checks = [held("text_embeddings", 1.0), ungated("image_encoder"), held("llm"), held("end_to_end")]
    agg = aggregate([c.to_dict() for c in checks])
    assert agg == {"status": "failed", "passed": False, "not_gated": ["image_encoder"]}


def test_defaults_gate_every_check_and_null_blocks_are_listed():
    assert ungated_checks(spec()) == []
    s = spec({"end_to_end": {"min_token_agreement": None},
              "llm": {"max_abs_diff": None, "min_cosine": None, "min_top1_agreement": None, "max_kl": None}})
    assert ungated_checks(s) == ["llm", "end_to_end"]
    # one threshold left on keeps a check gated
    assert ungated_checks(spec({"llm": {"max_abs_diff": None, "min_top1_agreement": None, "max_kl": 0.5}})) == []


def test_a_check_gated_only_by_its_own_reset_gate_is_not_gated_unless_that_gate_fails():
    s = spec({"llm": {"max_abs_diff": None, "min_cosine": None, "min_top1_agreement": None, "max_kl": None}})
    ok = CheckResult.build("llm", "llm", {"reset_max_abs_diff": 0.0}, [gate("reset_max_abs_diff", 0.0, 0.0, "max")])
    assert apply_gating(ok, s).status == "not_gated"
    broke = CheckResult.build("llm", "llm", {"reset_max_abs_diff": 0.5},
                              [gate("reset_max_abs_diff", 0.5, 0.0, "max")])
    assert apply_gating(broke, s).status == "failed"


def test_report_table_says_not_gated_and_what_and_nothing_fails():
    rep = report([held(n) for n in PARTS[:3]] + [ungated("end_to_end")])
    assert rep["status"] == "not_gated" and rep["failures"] == []
    raise_if_failed(rep)
    out = io.StringIO()
    print_report(rep, Console(file=out, width=160))
    text = out.getvalue()
    assert "validation not gated: end_to_end (token_agreement, first_divergence measured, no threshold)" in text
    assert "FAIL" not in text and "validation passed" not in text


def test_failed_report_raises_and_says_failed():
    rep = report([held("text_embeddings", 1.0)] + [held(n) for n in PARTS[1:]])
    assert verdict(rep, markup=False) == "validation failed"
    with pytest.raises(Exception, match=r"validation failed: text_embeddings\.x 1 > 0\.001"):
        raise_if_failed(rep)


# ------------------------------------------------------------------------------------------ bundles


def manifest_with(validation: dict | None) -> dict:
    return {"name": "tiny", "version": "0.1.0", "source": {"uri": "synthetic://tiny"}, "recipe": {},
            "validation": validation}


def test_the_manifest_records_status_and_what_is_not_gated():
    v = report([held(n) for n in PARTS[:3]] + [ungated("end_to_end")])
    m = validation_summary(v)
    assert (m["status"], m["not_gated"]) == ("not_gated", ["end_to_end"])
    assert validation_state(manifest_with(m)) == "not_gated"
    assert validation_summary(None) is None and validation_state(manifest_with(None)) == "not_validated"


def _old_entry(passed: bool, checks: dict) -> dict:
    """A manifest's validation entry as ovexport wrote it before the three states (only ``passed``)."""
    return {"passed": passed, "ov_config": {}, "device": "CPU", "checks": checks}


def _old_check(gates: list[dict], passed: bool = True, status: str | None = None) -> dict:
    c = {"passed": passed, "metrics": {g["metric"]: g["value"] for g in gates} or {"x": 0.1}, "gates": gates}
    if status is not None:
        c["status"] = status
    return c


G = {"metric": "max_abs_diff", "value": 0.0, "threshold": 0.0, "kind": "max", "passed": True}
RESET = {"metric": "reset_max_abs_diff", "value": 0.0, "threshold": 0.0, "kind": "max", "passed": True}


def test_old_bundles_that_only_say_passed_are_not_gated_unless_every_part_shows_a_gate():
    every = {n: _old_check([G]) for n in PARTS}
    assert state_of(_old_entry(True, every))["status"] == "passed"
    # issue 10's spelling of the check status
    spelled = {**every, "end_to_end": _old_check([], passed=None, status="not gated")}
    assert state_of(_old_entry(True, spelled)) == {"status": "not_gated", "not_gated": ["end_to_end"]}
    # before check statuses: a check with no gate, or only the LLM's fixed reset gate, gated nothing
    no_status = {**every, "llm": _old_check([RESET])}
    assert state_of(_old_entry(True, no_status)) == {"status": "not_gated", "not_gated": ["llm"]}
    missing = {n: every[n] for n in PARTS if n != "image_encoder"}
    assert state_of(_old_entry(True, missing))["not_gated"] == ["image_encoder"]
    assert state_of(_old_entry(False, every))["status"] == "failed"


def test_card_says_passed_not_gated_with_what_or_failed():
    states = {
        "passed": report([held(n) for n in PARTS]),
        "not_gated": report([held(n) for n in PARTS[:3]] + [ungated("end_to_end")]),
        "failed": report([held("llm", 1.0)] + [held(n) for n in PARTS if n != "llm"]),
    }
    cards = {k: render_card(manifest_with(validation_summary(v)), publishing) for k, v in states.items()}
    assert "Validation **passed**. The IRs" in cards["passed"] and "Warning" not in cards["passed"]
    assert "Validation **not gated**: end_to_end (token_agreement, first_divergence measured, no threshold)." \
        in cards["not_gated"]
    assert "> **Warning: validation not gated: end_to_end" in cards["not_gated"]
    assert "validation-not-gated" in cards["not_gated"] and "unvalidated" not in cards["not_gated"]
    assert "Validation **failed**. The IRs" in cards["failed"] and "**FAIL**" in cards["failed"]
    assert "Validation **passed**" not in cards["not_gated"] + cards["failed"]


@pytest.mark.parametrize("flags", [{}, {"allow_unvalidated": True}, {"allow_ungated": True},
                                   {"allow_unvalidated": True, "allow_ungated": True}])
def test_a_failed_bundle_is_never_publishable(flags):
    failed = validation_summary(report([held("llm", 1.0)] + [held(n) for n in PARTS if n != "llm"]))
    with pytest.raises(BundleError, match="a failed bundle is never published"):
        publishable(manifest_with(failed), **flags)


def test_not_gated_needs_allow_ungated_and_not_validated_needs_allow_unvalidated():
    ng = manifest_with(validation_summary(report([ungated(n) for n in PARTS])))
    with pytest.raises(BundleError, match="--allow-ungated"):
        publishable(ng)
    with pytest.raises(BundleError, match="--allow-ungated"):
        publishable(ng, allow_unvalidated=True)
    publishable(ng, allow_ungated=True)
    none = manifest_with(None)
    with pytest.raises(BundleError, match="--allow-unvalidated"):
        publishable(none, allow_ungated=True)
    publishable(none, allow_unvalidated=True)
    publishable(manifest_with(validation_summary(report([held(n) for n in PARTS]))))


def test_chat_and_serve_warning_names_each_state(tmp_path):
    def warning(validation):
        d = tmp_path / str(len(list(tmp_path.iterdir())))
        d.mkdir()
        (d / "manifest.json").write_text(json.dumps(manifest_with(validation)))
        return unvalidated_warning(d)

    assert warning(validation_summary(report([held(n) for n in PARTS]))) is None
    ng = warning(validation_summary(report([held(n) for n in PARTS[:3]] + [ungated("end_to_end")])))
    assert "validation NOT GATED: end_to_end" in ng and len(ng.splitlines()) == 1
    assert "validation FAILED" in warning(validation_summary(report([held("llm", 1.0)])))
    assert "validation NOT VALIDATED" in warning(None)
    assert phrase(None) == "not validated"


# ------------------------------------------------------------------------------------------ ovexport check


def test_check_warns_about_a_recipe_that_leaves_a_part_ungated(tmp_path):
    recipe = ROOT / "recipes" / "tiny-minicpmv2-int8.yaml"   # end_to_end is measured, not gated
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
