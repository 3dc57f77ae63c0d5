"""Loading recipes / pipelines from YAML: file:line errors, all at once, --set overrides."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from ovexport.errors import RecipeError
from ovexport.recipe.load import load_any, load_pipeline, load_recipe, parse_override

pytestmark = pytest.mark.unit

SHA = "187851962daa9b63072d40ec802f597b71bff532"

GOOD = """\
name: good
version: "1.0.0"
source: synthetic://tiny?seed=0
export:
  weight_dtype: fp32
compression:
  llm:
    mode: int4_sym
    group_size: 16
    ratio: 0.6
  image_encoder: null
"""


def write(dir_: Path, text: str, name: str = "r.yaml") -> Path:
    p = dir_ / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def problems(path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as ei:
        load_recipe(path, overrides)
    return ei.value.problems


def test_good_recipe_loads(tmp_path):
    r = load_recipe(write(tmp_path, GOOD))
    assert r.name == "good"
    assert r.compression.llm.group_size == 16
    assert r.compression.image_encoder is None
    assert r.base_dir == tmp_path and r.path == tmp_path / "r.yaml"


def test_typo_key_reported_with_file_and_line(tmp_path):
    p = write(tmp_path, GOOD.replace("    group_size: 16", "    grup_size: 16"))
    assert problems(p) == [
        f"{p}:9: compression.llm.grup_size: unknown key 'grup_size'; did you mean 'group_size'? (allowed: mode, "
        "group_size, ratio, all_layers, backup_mode, sensitivity_metric, ignored_scope, group_size_fallback, awq, scale_estimation, "
        "gptq, lora_correction, preset, model_type, bias_correction, fast_bias_correction, smooth_quant_alpha)"]


def test_typo_top_level_key(tmp_path):
    p = write(tmp_path, GOOD + "ouptut:\n  root: x\n")
    [msg] = problems(p)
    assert msg.startswith(f"{p}:12: ouptut: unknown key 'ouptut'; did you mean 'output'?")


def test_all_errors_reported_together_in_line_order(tmp_path):
    p = write(tmp_path, """\
        name: Bad_Name
        version: 1.0
        source: hf://openbmb/MiniCPM-V-2
        export:
          trace_image_size: 378
        steps: [download, convert_llm, download]
        compression:
          llm:
            mode: int8_sym
            group_size: 64
          image_encoder:
            ratio: 0.5
        validation:
          thresholds:
            llm:
              min_top1_agreement: 1.5
        """)
    with pytest.raises(RecipeError) as ei:
        load_recipe(p)
    probs = ei.value.problems
    assert [x.split(": ", 1)[0] for x in probs] == [
        f"{p}:1", f"{p}:2", f"{p}:3", f"{p}:5", f"{p}:6", f"{p}:10", f"{p}:11", f"{p}:16"]
    assert probs[1] == f"{p}:2: version: Input should be a valid string, got 1.0 (quote it in YAML)"
    assert probs[2] == (f"{p}:3: source: source 'hf://openbmb/MiniCPM-V-2' has no revision: a recipe must pin a "
                        "commit sha, e.g. hf://openbmb/MiniCPM-V-2@<40-hex commit sha>")
    assert probs[4] == f"{p}:6: steps.2: step 'download' is listed twice (also at steps.0)"
    assert probs[5] == (f"{p}:10: compression.llm.group_size: int8_sym is per-channel: group_size only applies "
                        "to int4 modes; remove group_size (or set -1)")
    # a missing key is reported at the line of its parent mapping
    assert probs[6] == f"{p}:11: compression.image_encoder.mode: required key is missing"
    assert probs[7] == (f"{p}:16: validation.thresholds.llm.min_top1_agreement: Input should be less than or "
                        "equal to 1, got 1.5")
    assert str(ei.value).startswith(f"8 problems: {p}:1: name: 'Bad_Name' is not a slug")
    assert ei.value.fix


def test_missing_top_level_key_reported_at_document_start(tmp_path):
    p = write(tmp_path, "# header\n\nname: x\nversion: '1.0.0'\n")
    assert problems(p) == [f"{p}:3: source: required key is missing"]


def test_data_aware_without_calibration_reported_at_option_line(tmp_path):
    p = write(tmp_path, GOOD.replace("    ratio: 0.6\n", "    ratio: 0.6\n    awq: true\n"))
    assert problems(p) == [f"{p}:11: compression.llm.awq: awq is data-aware and needs a top-level calibration "
                           "block (e.g. calibration: {source: builtin})"]
    load_recipe(p, ["calibration.source=builtin"])


def test_duplicate_key(tmp_path):
    p = write(tmp_path, GOOD + "name: again\n")
    assert problems(p) == [f"{p}:12: name: duplicate key (first at line 1)"]


def test_yaml_syntax_error_has_line(tmp_path):
    p = write(tmp_path, "name: x\nversion: '1.0.0'\nsource: [unclosed\nexport: {}\n")
    [msg] = problems(p)
    assert msg.startswith(f"{p}:4: invalid YAML: ")


def test_yaml_bad_indentation(tmp_path):
    p = write(tmp_path, "name: x\n  version: 1\n")
    [msg] = problems(p)
    assert msg == f"{p}:2: invalid YAML: mapping values are not allowed here"


@pytest.mark.parametrize("text, expected", [
    ("", "{p}:1: the file is empty; a recipe is a YAML mapping"),
    ("# only a comment\n", "{p}:1: the file is empty; a recipe is a YAML mapping"),
    ("- a\n- b\n", "{p}:1: the top level must be a mapping of keys, got list"),
    ("just a string\n", "{p}:1: the top level must be a mapping of keys, got a string"),
])
def test_empty_or_non_mapping(tmp_path, text, expected):
    p = write(tmp_path, text)
    assert problems(p) == [expected.format(p=p)]


def test_missing_file(tmp_path):
    with pytest.raises(RecipeError) as ei:
        load_recipe(tmp_path / "nope.yaml")
    assert ei.value.problems == [f"{tmp_path / 'nope.yaml'}: file not found"]
    assert "recipes/*.yaml" in ei.value.fix


# ------------------------------------------------------------------------------------------ overrides


def test_set_numbers_null_lists_mappings(tmp_path):
    p = write(tmp_path, GOOD)
    r = load_recipe(p, [
        "compression.llm.ratio=0.8",
        "compression.llm.group_size=-1",
        "validation.thresholds.llm.max_abs_diff=null",
        "validation.decode_steps=2",
        "steps=[download, convert_llm]",
        "compression.llm.ignored_scope={names: [lm_head], types: [MatMul]}",
        "description=a b c",
    ])
    assert r.compression.llm.ratio == 0.8 and r.compression.llm.group_size == -1
    assert r.validation.thresholds.llm.max_abs_diff is None
    assert r.validation.decode_steps == 2
    assert r.steps == ["download", "convert_llm"]
    assert r.compression.llm.ignored_scope.names == ["lm_head"]
    assert r.compression.llm.ignored_scope.types == ["MatMul"]
    assert r.description == "a b c"


def test_set_creates_intermediate_mappings(tmp_path):
    p = write(tmp_path, GOOD)
    r = load_recipe(p, ["compression.image_encoder.mode=int8_sym",     # image_encoder is null in the file
                        "compression.text_embeddings.mode=int8_asym",  # key absent in the file
                        "output.publish.repo_id=me/good-ov"])          # output absent in the file
    assert r.compression.image_encoder.mode == "int8_sym"
    assert r.compression.text_embeddings.mode == "int8_asym"
    assert r.output.publish.repo_id == "me/good-ov" and r.output.publish.private is True


def test_set_list_item_and_last_wins(tmp_path):
    p = write(tmp_path, GOOD + "steps: [download, convert_llm, compress]\n")
    r = load_recipe(p, ["steps.2=validate", "compression.llm.ratio=0.1", "compression.llm.ratio=0.9"])
    assert r.steps == ["download", "convert_llm", "validate"]
    assert r.compression.llm.ratio == 0.9


def test_set_errors_name_the_override(tmp_path):
    p = write(tmp_path, GOOD)
    assert problems(p, ["compression.llm.ratio=2"]) == [
        "--set compression.llm.ratio=2: compression.llm.ratio: Input should be less than or equal to 1, got 2"]
    assert problems(p, ["compression.lm.mode=int4_sym"]) == [
        "--set compression.lm.mode=int4_sym: compression.lm: unknown key 'lm'; did you mean 'llm'? "
        "(allowed: text_embeddings, llm, image_encoder)"]
    # a mapping created by the override that misses a required key
    assert problems(p, ["compression.image_encoder.group_size=8"]) == [
        "--set compression.image_encoder.group_size=8: compression.image_encoder.mode: required key is missing"]


def test_set_and_file_errors_together(tmp_path):
    p = write(tmp_path, GOOD.replace("  weight_dtype: fp32", "  weight_dtype: fp8"))
    assert problems(p, ["validation.seed=-1"]) == [
        f"{p}:5: export.weight_dtype: Input should be 'fp32', 'fp16' or 'bf16', got 'fp8'",
        "--set validation.seed=-1: validation.seed: Input should be greater than or equal to 0, got -1"]


@pytest.mark.parametrize("raw, expected", [
    ("compression.llm.ratio", "--set compression.llm.ratio: missing '=' (expected dotted.key=value)"),
    ("=3", "--set =3: bad key '' (expected dotted.key=value)"),
    ("a..b=3", "--set a..b=3: bad key 'a..b' (expected dotted.key=value)"),
])
def test_malformed_override(tmp_path, raw, expected):
    p = write(tmp_path, GOOD)
    assert problems(p, [raw]) == [expected]


def test_set_into_a_scalar(tmp_path):
    p = write(tmp_path, GOOD)
    assert problems(p, ["name.x=1"]) == [
        "--set name.x=1: name: is a string 'good', not a mapping, so it has no key 'x'"]


def test_set_index_into_missing_list(tmp_path):
    p = write(tmp_path, GOOD)
    assert problems(p, ["steps.1=compress"]) == [
        "--set steps.1=compress: steps: there is no list to index into; set the whole value instead, "
        "e.g. --set steps=[...]"]


def test_parse_override_values():
    assert parse_override("a.b=3").value == 3
    assert parse_override("a.b=0.5").value == 0.5
    assert parse_override("a.b=null").value is None
    assert parse_override("a.b=").value is None
    assert parse_override("a.b=[1, 2]").value == [1, 2]
    assert parse_override(f"source=hf://openbmb/MiniCPM-V-2@{SHA}").value == f"hf://openbmb/MiniCPM-V-2@{SHA}"
    assert parse_override("a.b=x=y").value == "x=y"
    assert parse_override(" a.b =1").key == ("a", "b")


def test_overrides_do_not_touch_the_file(tmp_path):
    p = write(tmp_path, GOOD)
    load_recipe(p, ["compression.llm.ratio=0.9"])
    assert load_recipe(p).compression.llm.ratio == 0.6


# ----------------------------------------------------------------------------------- sources, resolved


def test_local_source_relative_to_recipe_file(tmp_path, monkeypatch):
    p = write(tmp_path, GOOD.replace("synthetic://tiny?seed=0", "../ckpt"), name="recipes/r.yaml")
    monkeypatch.chdir(tmp_path / "recipes")  # the working directory must not matter
    r = load_recipe("r.yaml")
    assert r.source_spec.kind == "local"
    assert r.source_spec.path == tmp_path / "ckpt"
    assert r.output.root == Path("dist")  # output root stays relative to the working directory


def test_recipe_resolved(tmp_path):
    p = write(tmp_path, GOOD.replace("synthetic://tiny?seed=0", "synthetic://tiny")
              + "calibration:\n  source: calib\n")
    d = load_recipe(p).resolved()
    assert json.loads(json.dumps(d)) == d
    assert d["source"] == "synthetic://tiny?seed=0"
    assert d["calibration"] == {"source": (tmp_path / "calib").as_posix(), "num_samples": 32, "subset_size": 128}
    assert d["compression"]["llm"]["backup_mode"] == "int8_asym"
    assert d["compression"]["image_encoder"] is None
    assert d["output"] == {"root": "dist", "publish": None}
    assert d["validation"]["thresholds"]["end_to_end"] == {"min_token_agreement": 1.0}
    assert d["steps"][0] == "download" and len(d["steps"]) == 8


# ------------------------------------------------------------------------------------------- pipelines


def test_pipeline_loads_recipes_relative_to_itself(tmp_path):
    write(tmp_path, GOOD, name="recipes/a.yaml")
    write(tmp_path, GOOD.replace("name: good", "name: other"), name="recipes/b.yaml")
    pp = write(tmp_path, "recipes:\n  - recipes/a.yaml\n  - recipes/b.yaml\npublish:\n  repo_id_prefix: org/\n",
               name="pipeline.yaml")
    spec, recipes = load_pipeline(pp)
    assert [r.name for r in recipes] == ["good", "other"]
    assert spec.publish.repo_id_prefix == "org/"
    assert [r.name for r in load_any(pp)] == ["good", "other"]
    assert [r.name for r in load_any(tmp_path / "recipes/a.yaml")] == ["good"]


def test_pipeline_missing_recipe_reports_pipeline_line(tmp_path):
    write(tmp_path, GOOD, name="recipes/a.yaml")
    pp = write(tmp_path, "# releases\nrecipes:\n  - recipes/a.yaml\n  - recipes/missing.yaml\n",
               name="pipeline.yaml")
    with pytest.raises(RecipeError) as ei:
        load_pipeline(pp)
    assert ei.value.problems == [
        f"{pp}:4: recipes.1: recipe file not found: {tmp_path / 'recipes/missing.yaml'}"]


def test_pipeline_collects_errors_of_all_files(tmp_path):
    a = write(tmp_path, GOOD.replace("ratio: 0.6", "ratio: 7"), name="recipes/a.yaml")
    b = write(tmp_path, GOOD.replace("name: good", "nmae: good"), name="recipes/b.yaml")
    write(tmp_path, GOOD, name="recipes/c.yaml")
    write(tmp_path, GOOD, name="recipes/d.yaml")  # same name as c
    pp = write(tmp_path, textwrap.dedent("""\
        recipes:
          - recipes/a.yaml
          - recipes/b.yaml
          - recipes/c.yaml
          - recipes/d.yaml
          - recipes/gone.yaml
        pubilsh: {}
        """), name="pipeline.yaml")
    with pytest.raises(RecipeError) as ei:
        load_pipeline(pp)
    assert ei.value.problems == [
        f"{pp}:5: recipes.3: recipe name 'good' is already used by recipes.2 (recipes/c.yaml); "
        "names must be unique in a pipeline",
        f"{pp}:6: recipes.4: recipe file not found: {tmp_path / 'recipes/gone.yaml'}",
        f"{pp}:7: pubilsh: unknown key 'pubilsh'; did you mean 'publish'? (allowed: recipes, publish)",
        f"{a}:10: compression.llm.ratio: Input should be less than or equal to 1, got 7",
        f"{b}:1: name: required key is missing",
        f"{b}:1: nmae: unknown key 'nmae'; did you mean 'name'? (allowed: name, version, description, source, "
        "export, steps, compression, calibration, validation, output)",
    ]


def test_pipeline_without_recipes(tmp_path):
    pp = write(tmp_path, "recipes: []\n", name="pipeline.yaml")
    with pytest.raises(RecipeError) as ei:
        load_pipeline(pp)
    assert ei.value.problems == [f"{pp}:1: recipes: List should have at least 1 item after validation, not 0"]


def test_pipeline_overrides_apply_to_every_recipe(tmp_path):
    write(tmp_path, GOOD, name="recipes/a.yaml")
    write(tmp_path, GOOD.replace("name: good", "name: other"), name="recipes/b.yaml")
    pp = write(tmp_path, "recipes: [recipes/a.yaml, recipes/b.yaml]\n", name="pipeline.yaml")
    assert {r.output.root for r in load_any(pp, ["output.root=/tmp/o"])} == {Path("/tmp/o")}
