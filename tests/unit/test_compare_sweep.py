"""--sweep / --variant parsing and variant recipes: grids, stable names, one-line errors naming the sweep."""
from __future__ import annotations

import pytest

from ovexport.compare.sweep import Variant, load_variants, parse_sweep, parse_variant, variants
from ovexport.errors import RecipeError

pytestmark = pytest.mark.unit

RECIPE = "recipes/tiny-minicpmv2-int4.yaml"


def test_sweep_values_are_yaml():
    s = parse_sweep("compression.llm.ratio=0.4,1.0")
    assert s.key == "compression.llm.ratio" and s.values == (0.4, 1.0)
    s = parse_sweep("compression.llm={mode: int8_asym},null")
    assert s.values == ({"mode": "int8_asym"}, None)


@pytest.mark.parametrize("raw", ["compression.llm.ratio", "=1,2", "compression.llm.ratio=", "a..b=1",
                                 "compression.llm.ratio=0.4,0.4"])
def test_malformed_sweep_is_one_problem_with_the_fix(raw):
    with pytest.raises(RecipeError) as e:
        parse_sweep(raw)
    assert len(e.value.problems) == 1 and e.value.fix


def test_several_sweeps_make_a_grid_in_order():
    vs = variants([parse_sweep("compression.llm.ratio=0.4,0.6"), parse_sweep("compression.llm.group_size=16,32")])
    assert [v.label for v in vs] == ["llm.ratio=0.4 llm.group_size=16", "llm.ratio=0.4 llm.group_size=32",
                                     "llm.ratio=0.6 llm.group_size=16", "llm.ratio=0.6 llm.group_size=32"]
    assert vs[1].overrides == ["compression.llm.ratio=0.4", "compression.llm.group_size=32"]


def test_base_first_and_duplicate_points_once():
    vs = variants([parse_sweep("compression.llm.ratio=1.0")],
                  [parse_variant("compression.llm.ratio=1.0"), parse_variant("compression.llm.ratio=0.8")],
                  include_base=True)
    assert [v.label for v in vs] == ["base", "llm.ratio=1.0", "llm.ratio=0.8"]


def test_variant_names_are_stable_slugs_that_differ_per_point():
    a = Variant("x", ["compression.llm.ratio=0.4", "compression.llm.group_size=16"])
    b = Variant("y", ["compression.llm.group_size=16", "compression.llm.ratio=0.4"])
    c = Variant("z", ["compression.llm.ratio=0.6"])
    assert a.name("r") == b.name("r") != c.name("r")
    assert a.name("r").startswith("r.v-") and Variant("base").name("r") == "r"


def test_variant_values_may_hold_spaces():
    v = parse_variant("compression.llm={mode: int8_asym, group_size: -1} compression.image_encoder.mode=int8_static")
    assert v.overrides == ["compression.llm={mode: int8_asym, group_size: -1}",
                           "compression.image_encoder.mode=int8_static"]


def test_variant_recipes_are_named_and_validated():
    loaded = load_variants(RECIPE, ["output.root=/tmp/x"], variants([parse_sweep("compression.llm.ratio=0.8,1.0")],
                                                                     include_base=True))
    names = [r.name for _, r in loaded]
    assert names[0] == "tiny-minicpmv2-int4" and all(n.startswith("tiny-minicpmv2-int4.v-") for n in names[1:])
    assert [r.compression.llm.ratio for _, r in loaded] == [0.6, 0.8, 1.0]


def test_bad_sweep_key_is_one_line_naming_the_sweep_with_did_you_mean():
    with pytest.raises(RecipeError) as e:
        load_variants(RECIPE, [], variants([parse_sweep("compression.llm.ration=0.4,0.8,1.0")]))
    assert len(e.value.problems) == 1
    assert "--sweep compression.llm.ration=" in e.value.problems[0] and "did you mean 'ratio'" in e.value.problems[0]
    assert "--sweep" in e.value.fix


def test_bad_sweep_value_names_the_value():
    with pytest.raises(RecipeError) as e:
        load_variants(RECIPE, [], variants([parse_sweep("compression.llm.ratio=0.4,1.5"),
                                            parse_sweep("compression.llm.group_size=16,32")]))
    assert len(e.value.problems) == 1
    assert "--sweep compression.llm.ratio=0.4,1.5" in e.value.problems[0] and "1.5" in e.value.problems[0]


def test_a_key_that_needs_another_swept_key_is_judged_on_the_grid_points():
    # the fp32 recipe has no llm compression: ratio alone lacks a mode, which the other sweep gives
    loaded = load_variants("recipes/tiny-trained-minicpmv2-fp32.yaml", [],
                           variants([parse_sweep("compression.llm.mode=int4_sym,int4_asym"),
                                     parse_sweep("compression.llm.ratio=0.6,1.0")]))
    assert [(r.compression.llm.mode, r.compression.llm.ratio) for _, r in loaded] == [
        ("int4_sym", 0.6), ("int4_sym", 1.0), ("int4_asym", 0.6), ("int4_asym", 1.0)]


def test_a_variant_may_set_the_block_its_own_mode_needs():
    # int8_static needs a calibration block: alone that is a problem, with the same --variant's calibration not
    v = parse_variant("compression.image_encoder={mode: int8_static} calibration={source: builtin, num_samples: 4}")
    [(_, r)] = load_variants(RECIPE, [], [v])
    assert r.compression.image_encoder.mode == "int8_static" and r.calibration.num_samples == 4
    with pytest.raises(RecipeError, match="needs a top-level calibration block"):
        load_variants(RECIPE, [], [parse_variant("compression.image_encoder={mode: int8_static}")])


def test_a_swept_value_equal_to_the_base_is_one_row():
    """ratio=0.6 on a ratio-0.6 recipe builds the base itself: one variant, labelled with both."""
    loaded = load_variants(RECIPE, [], variants([parse_sweep("compression.llm.ratio=0.6,1.0")], include_base=True))
    assert [r.compression.llm.ratio for _, r in loaded] == [0.6, 1.0]
    assert [v.label for v, _ in loaded] == ["base = llm.ratio=0.6", "llm.ratio=1.0"]
    assert loaded[0][1].name == "tiny-minicpmv2-int4"
    # a spelling of the same value (1 vs 1.0) is the same build too
    loaded = load_variants(RECIPE, [], [parse_variant("compression.llm.ratio=1.0"), parse_variant("compression.llm.ratio=1")])
    assert len(loaded) == 1


def test_a_variant_of_another_source_is_refused_in_one_line():
    """Every variant is scored against the first variant's reference: another checkpoint cannot be."""
    with pytest.raises(RecipeError) as e:
        load_variants(RECIPE, [], variants([], [parse_variant("source=synthetic://tiny?seed=1")], include_base=True))
    assert "\n" not in str(e.value)
    assert "builds from source synthetic://tiny?seed=1" in str(e.value) and "one reference" in str(e.value)
