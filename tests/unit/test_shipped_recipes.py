"""Every recipe shipped in recipes/ and the top-level pipeline.yaml are valid and say what they claim."""
from __future__ import annotations

import re

from pathlib import Path

import pytest

from ovexport.recipe.load import load_pipeline, load_recipe

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
SHA = "187851962daa9b63072d40ec802f597b71bff532"


def test_recipes_are_shipped():
    assert {p.name for p in RECIPES} >= {
        "minicpmv2-int4.yaml", "minicpmv2-int8.yaml", "minicpmv2-fp16.yaml",
        "tiny-minicpmv2-int4.yaml", "tiny-minicpmv2-int8.yaml", "tiny-minicpmv2-fp32.yaml",
        "tiny-trained-minicpmv2-fp32.yaml", "tiny-trained-minicpmv2-int4.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=[p.stem for p in RECIPES])
def test_shipped_recipe_is_valid(path):
    r = load_recipe(path)
    assert r.name == path.stem, "a recipe's name is its file name"
    assert path.read_text().startswith("#"), "each recipe starts with a header comment"
    assert r.description
    assert r.output.root == Path("dist")
    assert r.validation.inference_precision == "f32" and r.validation.kv_cache_precision == "f32"
    if r.name.startswith("tiny-trained-"):
        assert r.version == "0.1.0"
        assert r.source_spec.uri == "synthetic://tiny-trained?seed=0"
        assert r.export.weight_dtype == "fp32"
    elif r.name.startswith("tiny-"):
        assert r.version == "0.1.0"
        assert r.source_spec.uri == "synthetic://tiny?seed=0"
        assert r.export.weight_dtype == "fp32"
    elif r.name.startswith("synthetic-full-"):
        assert r.source_spec.uri == "synthetic://full?seed=0"
        assert r.export.weight_dtype == "fp16"      # what the real recipes export
    else:
        assert r.version == "1.0.0"
        assert r.source_spec.uri == f"hf://openbmb/MiniCPM-V-2@{SHA}"
    r.resolved()


def test_int4_recipe_matches_the_notebook():
    r = load_recipe(ROOT / "recipes/minicpmv2-int4.yaml")
    llm = r.compression.llm
    assert (llm.mode, llm.group_size, llm.ratio, llm.backup_mode) == ("int4_sym", 64, 0.6, "int8_asym")
    assert r.compression.image_encoder is None and r.compression.text_embeddings is None
    assert r.export.weight_dtype == "fp16"
    t = r.validation.thresholds
    assert t.llm.max_abs_diff is None and t.llm.min_top1_agreement == 0.9 and t.llm.max_kl == 0.1
    assert t.image_encoder.min_cosine == 0.999 and t.end_to_end.min_token_agreement == 0.5


def test_int8vision_variants_differ_from_the_notebook_setting_only_in_the_image_encoder():
    for base, fast in [("minicpmv2-int4", "minicpmv2-int4-int8vision"),
                       ("synthetic-full-minicpmv2-int4", "synthetic-full-minicpmv2-int4-int8vision")]:
        a, b = (load_recipe(ROOT / f"recipes/{n}.yaml") for n in (base, fast))
        assert a.compression.llm == b.compression.llm and a.source == b.source and a.export == b.export
        assert a.compression.image_encoder is None
        assert b.compression.image_encoder.is_static and b.calibration is not None


def test_ratio1_recipe_differs_from_the_notebook_setting_only_in_the_int4_ratio():
    """The faster-decoding recipe (docs/investigations/2026-12-01-speed-follows-bytes.md): every LLM layer in INT4,
    nothing else."""
    a, b = (load_recipe(ROOT / f"recipes/{n}.yaml") for n in ("minicpmv2-int4", "minicpmv2-int4-ratio1"))
    assert b.compression.llm.ratio == 1.0 and a.compression.llm.ratio == 0.6
    assert b.compression.llm.model_copy(update={"ratio": 0.6}) == a.compression.llm
    assert (a.source, a.export, a.validation, a.compression.image_encoder) == (
        b.source, b.export, b.validation, b.compression.image_encoder)
    assert "real weights must confirm" in (ROOT / "recipes/minicpmv2-int4-ratio1.yaml").read_text().lower()


def test_int8_and_fp16_recipes():
    r8 = load_recipe(ROOT / "recipes/minicpmv2-int8.yaml")
    assert r8.compression.llm.mode == "int8_asym" and r8.compression.llm.group_size == -1
    assert r8.compression.image_encoder.mode.startswith("int8")
    r16 = load_recipe(ROOT / "recipes/minicpmv2-fp16.yaml")
    assert not r16.compression.enabled
    assert r16.validation.thresholds.llm.min_cosine is not None
    assert r16.validation.thresholds.llm.min_top1_agreement is not None


def test_tiny_recipes():
    r4 = load_recipe(ROOT / "recipes/tiny-minicpmv2-int4.yaml")
    assert (r4.compression.llm.mode, r4.compression.llm.group_size, r4.compression.llm.ratio) == ("int4_sym", 16, 0.6)
    r32 = load_recipe(ROOT / "recipes/tiny-minicpmv2-fp32.yaml")
    assert not r32.compression.enabled
    t = r32.validation.thresholds
    assert (t.text_embeddings.max_abs_diff, t.image_encoder.max_abs_diff, t.image_encoder.min_cosine,
            t.llm.max_abs_diff, t.llm.min_top1_agreement, t.end_to_end.min_token_agreement) == (
        0.0, 1e-4, 0.99999, 1e-3, 1.0, 1.0)
    r8 = load_recipe(ROOT / "recipes/tiny-minicpmv2-int8.yaml")
    assert r8.compression.llm.mode.startswith("int8")


def test_tiny_trained_recipes_gate_end_to_end_and_random_tiny_ones_do_not():
    """Greedy answers of a trained model mean something; those of random weights diverge under any change."""
    r32 = load_recipe(ROOT / "recipes/tiny-trained-minicpmv2-fp32.yaml")
    assert not r32.compression.enabled
    assert r32.validation.thresholds.end_to_end.min_token_agreement == 1.0
    r4 = load_recipe(ROOT / "recipes/tiny-trained-minicpmv2-int4.yaml")
    assert r4.compression.llm.mode == "int4_sym"
    assert r4.validation.thresholds.end_to_end.min_token_agreement is not None
    # random weights: int8 leaves end to end ungated (its worst measured agreement, one token of 8, leaves no
    # margin); int4 gates only the first token of each case
    assert load_recipe(ROOT / "recipes/tiny-minicpmv2-int8.yaml").validation.thresholds.end_to_end.min_token_agreement is None
    assert load_recipe(ROOT / "recipes/tiny-minicpmv2-int4.yaml").validation.thresholds.end_to_end.min_token_agreement == 0.1


MEASURED_TINY = ["tiny-minicpmv2-fp32", "tiny-minicpmv2-int4", "tiny-minicpmv2-int8",
                 "tiny-trained-minicpmv2-fp32", "tiny-trained-minicpmv2-int4"]


@pytest.mark.parametrize("name", MEASURED_TINY)
def test_each_gate_of_a_tiny_recipe_says_what_was_measured_and_how(name):
    """Issue 18: a gate comes from a measurement, with the command beside it, and a value on its own line."""
    text = (ROOT / "recipes" / f"{name}.yaml").read_text()
    assert f"python benchmarks/measure_thresholds.py --recipe recipes/{name}.yaml --seeds 0 1 2" in text
    block = text[text.index("  thresholds:"):text.index("\noutput:")]
    gates = [ln for ln in block.splitlines() if re.match(r"^\s+(max|min)_\w+: [0-9.e-]+", ln)]
    assert gates and all("# measured" in ln for ln in gates), [ln for ln in gates if "# measured" not in ln]


def test_pipeline_yaml():
    spec, recipes = load_pipeline(ROOT / "pipeline.yaml")
    assert spec.recipes == ["recipes/minicpmv2-int4.yaml", "recipes/minicpmv2-int4-int8vision.yaml",
                            "recipes/minicpmv2-int8.yaml", "recipes/minicpmv2-fp16.yaml",
                            "recipes/tiny-minicpmv2-int4.yaml"]
    assert [r.name for r in recipes] == ["minicpmv2-int4", "minicpmv2-int4-int8vision", "minicpmv2-int8",
                                         "minicpmv2-fp16", "tiny-minicpmv2-int4"]
