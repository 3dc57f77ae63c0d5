"""`ovexport compare` on tiny checkpoints: variants through the engine, one cached reference, resumable scoring,
bundles already built; and the validate step reusing cached PyTorch outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from ovexport.cli import cli
from ovexport.evaluation.evalset import EvalItem, write_folder

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INT4 = str(REPO / "recipes" / "tiny-minicpmv2-int4.yaml")


def ovexport(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)


@pytest.fixture(scope="module")
def eval_folder(tmp_path_factory) -> Path:
    """Four questions on images that are and are not sliced (random weights: the answers are noise)."""
    rng = np.random.default_rng(0)
    items = []
    for i, (w, h) in enumerate([(448, 448), (896, 448), (300, 200), (1344, 896)]):
        img = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        items.append(EvalItem(id=str(i), question=f"What is shape {i}?", image=img, answer="red"))
    return write_folder(items, tmp_path_factory.mktemp("evalset"))


VARIANTS = ["--variant", "compression.llm=null",
            "--variant", "compression.llm={mode: int8_asym}",
            "--variant", "compression.llm.ratio=1.0"]


@pytest.fixture(scope="module")
def compared(tmp_path_factory, eval_folder):
    root = tmp_path_factory.mktemp("dist")
    r = ovexport("compare", INT4, "--set", f"output.root={root}", *VARIANTS, "--eval", str(eval_folder),
                 "--max-new-tokens", "6")
    assert r.exit_code == 0, r.output
    out = root / "compare" / "tiny-minicpmv2-int4"
    return root, out, json.loads((out / "compare.json").read_text()), r.output


def test_compare_ranks_fp32_first_and_int4_ratio_1_above_int8(compared):
    _, _, res, _ = compared
    rows = {r["label"]: r for r in res["rows"]}
    order = [r["label"] for r in res["rows"]]
    assert order[0] == "reference" and order[1] == "llm=null", order
    assert rows["llm=null"]["kl_mean"] < 1e-4 and rows["llm=null"]["top1_agreement"] == 1.0
    int8, int4 = rows["llm={mode: int8_asym}"], rows["llm.ratio=1.0"]
    assert int4["kl_mean"] > 3 * int8["kl_mean"] > 0
    assert int4["llm_mb"] < rows["base"]["llm_mb"] < int8["llm_mb"] < rows["llm=null"]["llm_mb"]
    assert rows["llm=null"]["llm_compressed_pct"] == 0 and int8["llm_compressed_pct"] == 100
    assert int4["llm_int4_pct"] > rows["base"]["llm_int4_pct"] > 0   # the lm_head stays int8 (backup mode)
    assert res["random_weights"] is True and res["evalset"]["items"] == 4
    # KL over the first variant's (the int4 recipe), paired on the same 4 questions, with its interval
    assert rows["base"]["kl_vs_first"] == 1.0 and rows["base"]["kl_vs_first_ci"] == "(first)"
    for label in ("llm=null", "llm={mode: int8_asym}", "llm.ratio=1.0"):
        assert rows[label]["kl_vs_first_lo"] <= rows[label]["kl_vs_first"] <= rows[label]["kl_vs_first_hi"]
    assert rows["llm=null"]["kl_vs_first_hi"] < 0.01 and int8["kl_vs_first_hi"] < 1
    # the reference was computed in a process of its own, which reported its peak memory
    assert res["reference"]["cached"] is False and res["reference"]["peak_rss_bytes"] > 50e6
    assert res["peak_rss_bytes"] > 50e6                  # the compare process's own peak


def test_compare_writes_table_json_csv_plot_and_markdown(compared):
    _, out, res, output = compared
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "compare.csv").read_text().splitlines()[0].startswith("label,name,kl_mean")
    md = (out / "compare.md").read_text()
    assert "noise" in md and "| reference |" in md
    assert "Pareto" in output and "KL mean" in output
    assert len(list((out / "variants").glob("*.json"))) == 4


def test_rerun_reuses_the_reference_and_scores_only_the_new_variant(compared, eval_folder):
    root, out, first, _ = compared
    r = ovexport("compare", INT4, "--set", f"output.root={root}", *VARIANTS,
                 "--variant", "compression.llm.group_size=32", "--eval", str(eval_folder), "--max-new-tokens", "6")
    assert r.exit_code == 0, r.output
    res = json.loads((out / "compare.json").read_text())
    assert res["reference"]["cached"] is True and res["reference"]["peak_rss_bytes"] is None
    assert r.output.count(": up to date (variants/") == 4
    assert len(res["rows"]) == len(first["rows"]) + 1
    assert "✓ download" not in r.output       # the new variant's checkpoint was up to date
    old = {row["label"]: row["kl_mean"] for row in first["rows"]}
    assert all(row["kl_mean"] == old[row["label"]] for row in res["rows"] if row["label"] in old)


def test_compare_built_bundles_reads_the_same_cached_reference(compared, eval_folder, tmp_path):
    root, out, first, _ = compared
    r = ovexport("run", INT4, "--set", f"output.root={root}")
    assert r.exit_code == 0, r.output
    bundle = root / "tiny-minicpmv2-int4" / "0.1.0"
    # the compare of these very IRs is no part of the bundle; `publish --compare` puts it on the published card
    assert "Comparison with the source model" not in (bundle / "README.md").read_text()
    assert not (bundle / "compare.json").exists()
    from ovexport.bundle.manifest import read_manifest
    from ovexport.publish.figures import published_with_figures
    published, staged = published_with_figures(bundle, read_manifest(bundle), out)
    card = staged["README.md"].decode()
    assert "Comparison with the source model" in card and "kl_mean" in card and "noise" in card
    assert published["figures"]["compare"]["eval set"].endswith("(4 questions)")
    ckpt = root / ".work" / "tiny-minicpmv2-int4" / "checkpoint"
    env = {"OVEXPORT_REFERENCE_CACHE": str(root / ".work" / ".reference")}
    r = ovexport("compare", str(bundle), "--checkpoint", str(ckpt), "--eval", str(eval_folder), "--max-new-tokens", "6",
                 "--out", str(tmp_path / "cmp"), env=env)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert res["reference"]["cached"] is True
    base = next(row for row in first["rows"] if row["label"] == "base")
    mine = next(row for row in res["rows"] if not row.get("is_reference"))
    assert mine["kl_mean"] == pytest.approx(base["kl_mean"], rel=1e-6)


def test_bad_sweep_is_one_line_with_the_fix(tmp_path):
    r = CliRunner().invoke(cli, ["compare", INT4, "--sweep", "compression.llm.ration=0.4,0.8"])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did you mean 'ratio'" in lines[0] and "fix:" in lines[0]


def test_validation_reuses_cached_pytorch_outputs(tiny_checkpoint, tiny_irs_int4, tmp_path):
    from rich.console import Console

    from ovexport.evaluation.reference_cache import ReferenceCache
    from ovexport.recipe.load import load_recipe
    from ovexport.validators.run_checks import run_validation

    spec = load_recipe(INT4).validation
    cache = ReferenceCache(tmp_path / "ref")
    quiet = Console(file=open("/dev/null", "w"))
    first = run_validation(tiny_checkpoint, tiny_irs_int4, spec, quiet, reference_cache=cache)
    assert (cache.hits, cache.misses) == (0, 4)
    second = run_validation(tiny_checkpoint, tiny_irs_int4, spec, quiet, reference_cache=cache)
    assert (cache.hits, cache.misses) == (4, 4)
    assert [c["metrics"] for c in first["checks"]] == [c["metrics"] for c in second["checks"]]


def _dataset_folder(root: Path) -> Path:
    import datasets

    rng = np.random.default_rng(1)
    imgs = [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for w, h in [(448, 448), (896, 448)]]
    ds = datasets.Dataset.from_dict({"picture": imgs, "prompt": ["What is it?", "Which colour?"],
                                     "labels": [["red", "crimson"], ["blue"]]},
                                    features=datasets.Features({"picture": datasets.Image(),
                                                                "prompt": datasets.Value("string"),
                                                                "labels": datasets.Sequence(datasets.Value("string"))}))
    (root / "data").mkdir(parents=True)
    ds.to_parquet(str(root / "data" / "validation-00000-of-00001.parquet"))
    return root


@pytest.mark.parametrize("kind", ["dataset", "generated"])
def test_other_eval_sets_score_the_built_variants(compared, tmp_path, kind):
    root, _, _, _ = compared
    if kind == "dataset":
        args = ["--dataset", str(_dataset_folder(tmp_path / "ds")), "--split", "validation",
                "--columns", "image=picture,question=prompt,answer=labels"]
    else:
        args = ["--eval", "generated", "--limit", "2"]
    r = ovexport("compare", INT4, "--set", f"output.root={root}", "--no-base", "--variant", "compression.llm.ratio=1.0",
                 *args, "--max-new-tokens", "4", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert "✓ compress" not in r.output          # the variant's IRs were built by the first compare
    res = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert res["evalset"]["items"] == 2
    assert res["evalset"]["has_answers"] is (kind == "dataset")
    row = next(x for x in res["rows"] if not x.get("is_reference"))
    assert (row["task_accuracy"] is None) is (kind == "generated") and row["kl_mean"] > 0


def test_speed_is_measured_beside_the_first_variant_without_rescoring(compared, eval_folder):
    """``--speed`` on a finished compare: accuracy read back (not rescored), each variant timed with the first's
    runs interleaved (ratios in the table), the first's own figures from those runs; a rerun measures nothing."""
    root, out, _, _ = compared
    args = ["compare", INT4, "--set", f"output.root={root}", *VARIANTS, "--eval", str(eval_folder),
            "--max-new-tokens", "6", "--speed", "--speed-runs", "1"]
    r = ovexport(*args)
    assert r.exit_code == 0, r.output
    assert r.output.count("up to date (variants/") == 4, r.output       # scores kept: speed is not in their key
    res = json.loads((out / "compare.json").read_text())
    speed = {v["label"]: v["speed"] for v in res["variants"]}
    assert speed["base"]["beside"] == "llm=null" and "first" not in speed["base"]
    for label in ("llm=null", "llm={mode: int8_asym}", "llm.ratio=1.0"):
        s = speed[label]
        assert s["first"]["label"] == "base" and set(s["cases"]) == {"448x448", "1344x896"}
        assert s["ttft_ms"] > 0 and s["decode_tokens_per_s"] > 0 and s["cpu"]["flags"]
        ratio = s["first"]["ratios"]["448x448"]["ttft"]
        assert ratio == pytest.approx(s["ttft_ms"] / s["first"]["cases"]["448x448"]["ttft_ms"], rel=0.01)
    rows = {row["label"]: row for row in res["rows"]}
    assert rows["base"]["ttft_vs_first"] == 1.0 and rows["llm=null"]["decode_vs_first"] > 0
    md = (out / "compare.md").read_text()
    assert "TTFT x first" in md and "interleaved" in md and "avx2" in md
    assert "ttft_vs_first" in (out / "compare.csv").read_text().splitlines()[0]
    again = ovexport(*args)
    assert again.exit_code == 0 and "speed: up to date" in again.output, again.output
    assert json.loads((out / "compare.json").read_text())["variants"] == res["variants"]
