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


def _bundle(path, name="m", version="1.0.0", digest="ckpt-a"):
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"name": name, "version": version,
                                                    "source": {"uri": "synthetic://tiny?seed=0",
                                                               "checkpoint_digest": digest}}))
    return path


def test_two_bundles_of_one_name_and_version_get_two_rows_and_two_results_files(tmp_path):
    from ovexport.compare.bundles import bundle_variants

    a, b = _bundle(tmp_path / "root-a" / "m" / "1.0.0"), _bundle(tmp_path / "root-b" / "m" / "1.0.0")
    found = bundle_variants([a, b, a])                 # the same folder twice is one row
    assert len(found) == 2
    assert len({v.label for v in found}) == 2 and all(v.label.startswith("m@1.0.0 (") for v in found)
    assert len({v.name for v in found}) == 2
    [alone] = bundle_variants([_bundle(tmp_path / "c" / "n" / "2.0.0", name="n", version="2.0.0")])
    assert alone.label == "n@2.0.0"


def test_bundles_of_different_checkpoints_are_refused(tmp_path):
    from ovexport.compare.bundles import bundle_variants
    from ovexport.errors import InputError

    a = _bundle(tmp_path / "a" / "m" / "1.0.0")
    b = _bundle(tmp_path / "b" / "n" / "1.0.0", name="n", digest="ckpt-b")
    with pytest.raises(InputError, match="different checkpoints") as e:
        bundle_variants([a, b])
    assert "\n" not in str(e.value)
