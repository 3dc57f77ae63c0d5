"""compare's report: ranking, Pareto front, CSV/JSON/Markdown/PNG outputs."""
from __future__ import annotations

import csv
import json

import pytest

from ovexport.compare import report

pytestmark = pytest.mark.unit


def _rows():
    return [
        {"label": "int4", "kl_mean": 0.3, "task_accuracy": 0.80, "llm_mb": 1.0},
        {"label": "reference", "is_reference": True, "kl_mean": 0.0, "task_accuracy": 0.95},
        {"label": "fp32", "kl_mean": 1e-7, "task_accuracy": 0.95, "llm_mb": 4.0},
        {"label": "int8", "kl_mean": 0.01, "task_accuracy": 0.95, "llm_mb": 2.0},
        {"label": "int4-big-groups", "kl_mean": 0.5, "task_accuracy": 0.70, "llm_mb": 1.1},
    ]


def test_reference_first_then_by_mean_kl():
    assert [r["label"] for r in report.ranked(_rows())] == ["reference", "fp32", "int8", "int4", "int4-big-groups"]


def test_pareto_front_is_the_undominated_size_accuracy_points():
    # fp32 is dominated by int8 (smaller, as accurate); int4-big-groups by int4 (smaller and more accurate)
    assert report.pareto(_rows()) == {"int4", "int8"}


def test_pareto_falls_back_to_exact_match_without_ground_truth():
    rows = [{"label": "a", "exact_match": 0.5, "llm_mb": 1.0}, {"label": "b", "exact_match": 0.4, "llm_mb": 2.0}]
    assert report.pareto(rows) == {"a"}


def test_outputs(tmp_path):
    rows = report.ranked(_rows())
    result = {"recipe": "r.yaml", "evalset": {"name": "heldout", "items": 3, "has_answers": True},
              "reference": {"kind": "PyTorch"}, "max_new_tokens": 8, "machine": "cpu", "random_weights": True}
    report.write_csv(rows, tmp_path / "c.csv")
    got = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert [r["label"] for r in got] == [r["label"] for r in rows] and got[2]["kl_mean"] == "0.01"
    report.write_json({**result, "rows": rows}, tmp_path / "c.json")
    assert json.loads((tmp_path / "c.json").read_text())["rows"][0]["label"] == "reference"
    md = report.markdown(result, rows)
    assert "**int8**" in md and "| fp32 |" in md and "noise" in md
    png = report.plot(rows, tmp_path / "c.png", "title")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
