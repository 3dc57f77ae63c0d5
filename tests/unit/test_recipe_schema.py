"""The recipe schema and source strings, without files."""
from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ovexport.recipe.schema import (
    PartCompression,
    PipelineSpec,
    Recipe,
    ValidationSpec,
    step_names,
)
from ovexport.recipe.source import Source, parse_calibration_source, parse_source

pytestmark = pytest.mark.unit

SHA = "187851962daa9b63072d40ec802f597b71bff532"
HF = f"hf://openbmb/MiniCPM-V-2@{SHA}"


def minimal(**over) -> dict:
    data = {"name": "r", "version": "1.0.0", "source": "synthetic://tiny"}
    data.update(over)
    return data


def errors_of(data: dict, **kw) -> list[tuple[tuple, str]]:
    with pytest.raises(ValidationError) as ei:
        Recipe.model_validate(data, **kw)
    return [(e["loc"], e["msg"]) for e in ei.value.errors()]


# ------------------------------------------------------------------------------------------- sources


def test_hf_source_pinned():
    s = parse_source(HF)
    assert s == Source(kind="hf", repo_id="openbmb/MiniCPM-V-2", revision=SHA)
    assert s.uri == HF
    assert parse_source(s.uri) == s


def test_hf_source_revision_is_normalised_to_lower_case():
    assert parse_source(f"hf://openbmb/MiniCPM-V-2@{SHA.upper()}").revision == SHA


@pytest.mark.parametrize("bad", ["hf://openbmb/MiniCPM-V-2", "hf://openbmb/MiniCPM-V-2@"])
def test_hf_source_without_revision_is_rejected(bad):
    with pytest.raises(ValueError, match="has no revision: a recipe must pin a commit sha"):
        parse_source(bad)


@pytest.mark.parametrize("rev", ["main", "v1.0", SHA[:12], SHA + "0"])
def test_hf_source_with_branch_or_short_sha_is_rejected(rev):
    with pytest.raises(ValueError, match=r"is not a commit sha: pin a 40-hex commit sha"):
        parse_source(f"hf://openbmb/MiniCPM-V-2@{rev}")


@pytest.mark.parametrize("bad", ["hf://MiniCPM-V-2@" + SHA, "hf://a/b/c@" + SHA, "hf://@" + SHA])
def test_hf_source_bad_repo_id(bad):
    with pytest.raises(ValueError, match="bad Hugging Face repo id"):
        parse_source(bad)


@pytest.mark.parametrize("bad", ["s3://bucket/model", "http://example.com/x", "file:///tmp/x"])
def test_unknown_scheme_is_rejected(bad):
    with pytest.raises(ValueError, match=r"unknown source scheme '\w+://'"):
        parse_source(bad)


def test_synthetic_sources():
    assert parse_source("synthetic://tiny") == Source(kind="synthetic", size="tiny", seed=0)
    assert parse_source("synthetic://full?seed=7") == Source(kind="synthetic", size="full", seed=7)
    assert parse_source("synthetic://tiny").uri == "synthetic://tiny?seed=0"


@pytest.mark.parametrize("bad, message", [
    ("synthetic://small?seed=0", "unknown synthetic size 'small'"),
    ("synthetic://?seed=0", "unknown synthetic size ''"),
    ("synthetic://tiny?seed=-1", "synthetic seed must be an integer >= 0, got '-1'"),
    ("synthetic://tiny?seed=abc", "synthetic seed must be an integer >= 0, got 'abc'"),
    ("synthetic://tiny?seed=", "synthetic seed must be an integer >= 0, got ''"),
    ("synthetic://tiny?size=3", "unknown synthetic parameter 'size'"),
])
def test_bad_synthetic_sources(bad, message):
    with pytest.raises(ValueError) as ei:
        parse_source(bad)
    assert message in str(ei.value)


def test_local_sources(tmp_path):
    assert parse_source("ckpt", tmp_path) == Source(kind="local", path=tmp_path / "ckpt")
    assert parse_source("../x/ckpt", tmp_path / "recipes").path == tmp_path / "x" / "ckpt"
    assert parse_source(str(tmp_path / "abs")).path == tmp_path / "abs"
    # no base dir: stays relative; existence is not checked
    assert parse_source("does/not/exist").path == Path("does/not/exist")


def test_empty_source():
    with pytest.raises(ValueError, match="source is empty"):
        parse_source("  ")


def test_calibration_sources(tmp_path):
    assert parse_calibration_source("builtin").kind == "builtin"
    c = parse_calibration_source("hf-dataset:lmms-lab/COCO-Caption:val")
    assert (c.kind, c.dataset, c.split) == ("hf-dataset", "lmms-lab/COCO-Caption", "val")
    assert parse_calibration_source("hf-dataset:x").split == "train"
    assert parse_calibration_source("calib", tmp_path).path == tmp_path / "calib"
    with pytest.raises(ValueError, match="unknown calibration source"):
        parse_calibration_source("s3://x")
    with pytest.raises(ValueError, match="bad dataset name"):
        parse_calibration_source("hf-dataset:")


# -------------------------------------------------------------------------------------------- recipe


def test_minimal_recipe_defaults():
    r = Recipe.model_validate(minimal())
    assert r.steps == list(step_names())
    assert r.export.weight_dtype == "fp16" and r.export.trace_image_size is None   # the family's own
    assert r.compression.parts() == {} and not r.compression.enabled
    assert r.calibration is None
    assert r.validation.thresholds.text_embeddings.max_abs_diff == 0.0
    assert r.validation.thresholds.image_encoder.max_abs_diff == 1e-4
    assert r.validation.thresholds.image_encoder.min_cosine == 0.99999
    assert r.validation.thresholds.llm.max_abs_diff == 1e-3
    assert r.validation.thresholds.llm.min_top1_agreement == 1.0
    assert r.validation.thresholds.llm.max_kl is None
    assert r.validation.thresholds.end_to_end.min_token_agreement == 1.0
    assert r.output.root == Path("dist") and r.output.publish is None
    assert r.bundle_dir == Path("dist/r/1.0.0")
    assert r.source_spec == Source(kind="synthetic", size="tiny", seed=0)


def test_step_names_are_the_registered_steps_in_pipeline_order():
    from ovexport.engine.step import REGISTRY

    assert step_names() == ("download", "convert_text_embeddings", "convert_llm", "make_stateful",
                            "convert_image_encoder", "compress", "validate", "package")
    assert set(step_names()) == set(REGISTRY.names())


def test_compression_keys_are_the_parts_table():
    from ovexport.parts import PART_KEYS
    from ovexport.recipe.schema import CompressionSpec

    assert tuple(CompressionSpec.model_fields) == PART_KEYS


def test_unknown_keys_rejected_everywhere():
    errs = errors_of(minimal(exprot={}, compression={"llm": {"mode": "int4_sym", "grup_size": 8}}))
    assert sorted(errs) == [(("compression", "llm", "grup_size"), "Extra inputs are not permitted"),
                            (("exprot",), "Extra inputs are not permitted")]


@pytest.mark.parametrize("name", ["Bad", "-x", "a b", ""])
def test_bad_names(name):
    assert errors_of(minimal(name=name))[0][0] == ("name",)


@pytest.mark.parametrize("version", ["1.0.0", "0.1.0", "1.2.3-rc.1", "1.0.0-alpha+build.5", "10.20.30+meta"])
def test_good_versions(version):
    assert Recipe.model_validate(minimal(version=version)).version == version


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "1.0.0+", "1.0.0-01"])
def test_bad_versions(version):
    [(loc, msg)] = errors_of(minimal(version=version))
    assert loc == ("version",) and "is not a semantic version" in msg


def test_source_errors_surface_in_the_recipe():
    [(loc, msg)] = errors_of(minimal(source="hf://openbmb/MiniCPM-V-2"))
    assert loc == ("source",)
    assert "a recipe must pin a commit sha" in msg


def test_local_source_resolves_against_base_dir(tmp_path):
    r = Recipe.model_validate(minimal(source="../ckpt"), context={"base_dir": tmp_path / "recipes"})
    assert r.source_spec.path == tmp_path / "ckpt"
    assert r.base_dir == tmp_path / "recipes"


@pytest.mark.parametrize("size, ok", [(448, True), (224, True), (14, True), (378, False), (450, False),
                                      (0, False)])
def test_trace_image_size(size, ok):
    data = minimal(export={"trace_image_size": size})
    if ok:
        assert Recipe.model_validate(data).export.trace_image_size == size
    else:
        [(loc, _)] = errors_of(data)
        assert loc == ("export", "trace_image_size")


def test_the_default_trace_size_is_the_family_s_and_a_resolved_recipe_shows_it():
    from ovexport.models.registry import family_of_synthetic

    family = family_of_synthetic("tiny")
    r = Recipe.model_validate(minimal())
    assert r.trace_size() == family.trace_image_size == r.resolved()["export"]["trace_image_size"]
    assert isinstance(r.trace_size(), int)
    # a size the recipe gives wins, and the default resolves to what the same recipe says explicitly
    assert Recipe.model_validate(minimal(export={"trace_image_size": 224})).trace_size() == 224
    explicit = Recipe.model_validate(minimal(export={"trace_image_size": family.trace_image_size}))
    assert explicit.resolved() == r.resolved()


def test_a_hub_source_s_trace_size_is_known_once_its_family_is():
    from ovexport.models.registry import family_of_synthetic

    family = family_of_synthetic("tiny")
    r = Recipe.model_validate(minimal(source=HF))
    assert r.trace_size() is None and r.resolved()["export"]["trace_image_size"] is None
    assert r.trace_size(family) == family.trace_image_size == r.resolved(family)["export"]["trace_image_size"]


def test_a_family_without_a_default_trace_size_asks_the_recipe_for_one():
    from ovexport.errors import CheckpointError
    from ovexport.models.registry import default_trace_size

    class NoDefault:
        name = "nodefault"

    with pytest.raises(CheckpointError, match="export.trace_image_size"):
        default_trace_size(NoDefault())


def test_trace_image_size_378_message():
    [(_, msg)] = errors_of(minimal(export={"trace_image_size": 378}))
    assert "27x27" in msg and "position-embedding resize" in msg


def test_steps_subset_in_order_ok():
    assert Recipe.model_validate(minimal(steps=["download", "convert_llm"])).steps == ["download", "convert_llm"]


def test_steps_duplicates_and_unknown():
    assert errors_of(minimal(steps=["download", "convert_llm", "download"])) == [
        (("steps", 2), "step 'download' is listed twice (also at steps.0)")]
    [(loc, msg)] = errors_of(minimal(steps=["download", "convrt_llm"]))
    assert loc == ("steps", 1) and msg == "unknown step 'convrt_llm'; did you mean 'convert_llm'?"


def test_steps_order_and_empty():
    [(loc, msg)] = errors_of(minimal(steps=["convert_llm", "download"]))
    assert loc == ("steps",) and msg == "Value error, steps must be in pipeline order: download, convert_llm"
    [(loc, msg)] = errors_of(minimal(steps=[]))
    assert loc == ("steps",) and "no steps" in msg


# --------------------------------------------------------------------------------------- compression


def test_int4_defaults_resolved():
    p = PartCompression(mode="int4_sym")
    assert (p.group_size, p.ratio, p.backup_mode, p.all_layers) == (64, 1.0, "int8_asym", False)
    assert p.ignored_scope.names == [] and not p.data_aware
    assert PartCompression(mode="int4_asym", group_size=-1).group_size == -1


def test_int8_is_per_channel():
    assert PartCompression(mode="int8_asym").group_size == -1
    assert PartCompression(mode="int8_sym", group_size=-1).group_size == -1
    assert PartCompression(mode="int8_sym").nncf_kwargs() == {"mode": "int8_sym"}


def test_int8_with_group_size_rejected():
    [(loc, msg)] = errors_of(minimal(compression={"llm": {"mode": "int8_asym", "group_size": 64}}))
    assert loc == ("compression", "llm", "group_size")
    assert msg == ("int8_asym is per-channel: group_size only applies to int4 modes; "
                   "remove group_size (or set -1)")


def test_int8_rejects_int4_only_options():
    errs = errors_of(minimal(compression={"image_encoder": {
        "mode": "int8_sym", "ratio": 0.5, "all_layers": True, "backup_mode": "none",
        "sensitivity_metric": "weight_quantization_error", "gptq": True}}))
    assert [loc[-1] for loc, _ in errs] == ["ratio", "all_layers", "backup_mode", "sensitivity_metric", "gptq"]
    assert errs[-1][1] == "gptq needs an int4 mode (int4_sym or int4_asym), not int8_sym"


@pytest.mark.parametrize("gs", [0, -2])
def test_bad_group_size(gs):
    [(loc, _)] = errors_of(minimal(compression={"llm": {"mode": "int4_sym", "group_size": gs}}))
    assert loc == ("compression", "llm", "group_size")


@pytest.mark.parametrize("ratio", [0, 1.01, -0.5])
def test_bad_ratio(ratio):
    [(loc, _)] = errors_of(minimal(compression={"llm": {"mode": "int4_sym", "ratio": ratio}}))
    assert loc == ("compression", "llm", "ratio")


def test_mode_required_and_checked():
    assert errors_of(minimal(compression={"llm": {"group_size": 64}})) == [
        (("compression", "llm", "mode"), "Field required")]
    [(loc, _)] = errors_of(minimal(compression={"llm": {"mode": "int5"}}))
    assert loc == ("compression", "llm", "mode")


@pytest.mark.parametrize("opt", ["awq", "scale_estimation", "gptq", "lora_correction"])
def test_data_aware_needs_calibration(opt):
    data = minimal(compression={"llm": {"mode": "int4_asym", opt: True}})
    assert errors_of(data) == [(("compression", "llm", opt),
                                f"{opt} is data-aware and needs a top-level calibration block "
                                "(e.g. calibration: {source: builtin})")]
    r = Recipe.model_validate({**data, "calibration": {"source": "builtin"}})
    assert r.compression.llm.data_aware
    assert r.compression.llm.nncf_kwargs()[opt] is True
    assert r.calibration.num_samples == 32 and r.calibration.subset_size == 128


def test_data_aware_sensitivity_metric_needs_calibration():
    data = minimal(compression={"image_encoder": {"mode": "int4_sym", "sensitivity_metric": "hessian_input_activation"}})
    assert errors_of(data) == [(("compression", "image_encoder", "sensitivity_metric"),
                                "sensitivity_metric hessian_input_activation is data-aware and needs a top-level "
                                "calibration block (e.g. calibration: {source: builtin})")]
    data["compression"]["image_encoder"]["sensitivity_metric"] = "weight_quantization_error"
    assert not Recipe.model_validate(data).compression.image_encoder.data_aware


def test_gptq_and_lora_correction_exclusive():
    errs = errors_of(minimal(calibration={}, compression={"llm": {"mode": "int4_sym", "gptq": True,
                                                                  "lora_correction": True}}))
    assert errs == [(("compression", "llm", "lora_correction"),
                     "gptq and lora_correction cannot be used together; choose one")]


def test_ignored_scope_patterns_must_compile():
    [(loc, msg)] = errors_of(minimal(compression={"llm": {"mode": "int4_sym", "ignored_scope": {"patterns": ["("]}}}))
    assert loc == ("compression", "llm", "ignored_scope", "patterns")
    assert "not a valid regular expression" in msg


def test_nncf_kwargs_int4():
    p = PartCompression(mode="int4_sym", group_size=16, ratio=0.6, ignored_scope={"names": ["lm_head"]})
    assert p.nncf_kwargs() == {"mode": "int4_sym", "group_size": 16, "ratio": 0.6, "all_layers": False,
                               "backup_mode": "int8_asym",
                               "ignored_scope": {"names": ["lm_head"], "patterns": [], "types": []}}


def test_bad_calibration_source():
    [(loc, _)] = errors_of(minimal(calibration={"source": "ftp://x"}))
    assert loc == ("calibration", "source")


# ----------------------------------------------------------------------------------------- validation


def test_validation_spec():
    v = ValidationSpec()
    assert (v.device, v.inference_precision, v.kv_cache_precision) == ("CPU", "f32", "f32")
    assert (v.decode_steps, v.generate_tokens, v.seed) == (4, 8, 0)
    assert ValidationSpec(inference_precision="bf16", kv_cache_precision="u8").ov_config() == {
        "INFERENCE_PRECISION_HINT": "bf16", "KV_CACHE_PRECISION": "u8"}


def test_thresholds_override_and_null():
    r = Recipe.model_validate(minimal(validation={"thresholds": {"llm": {"max_abs_diff": None, "max_kl": 0.1}}}))
    llm = r.validation.thresholds.llm
    assert (llm.max_abs_diff, llm.max_kl, llm.min_top1_agreement) == (None, 0.1, 1.0)


@pytest.mark.parametrize("part, key, value", [
    ("llm", "min_top1_agreement", 1.5), ("llm", "max_kl", -1), ("image_encoder", "min_cosine", 2),
    ("text_embeddings", "max_abs_diff", float("nan")), ("end_to_end", "min_token_agreement", -0.1)])
def test_threshold_ranges(part, key, value):
    [(loc, _)] = errors_of(minimal(validation={"thresholds": {part: {key: value}}}))
    assert loc == ("validation", "thresholds", part, key)


def test_bad_precisions():
    errs = errors_of(minimal(validation={"inference_precision": "fp32", "kv_cache_precision": "i8"}))
    assert [loc for loc, _ in errs] == [("validation", "inference_precision"), ("validation", "kv_cache_precision")]


# ----------------------------------------------------------------------------------- output, pipeline


def test_publish_repo_id():
    r = Recipe.model_validate(minimal(output={"root": "/tmp/out", "publish": {"repo_id": "me/r-ov"}}))
    assert r.output.publish.private is True and r.output.root == Path("/tmp/out")
    [(loc, _)] = errors_of(minimal(output={"publish": {"repo_id": "nope"}}))
    assert loc == ("output", "publish", "repo_id")


def test_pipeline_spec():
    spec = PipelineSpec.model_validate({"recipes": ["a.yaml"], "publish": {"repo_id_prefix": "org/ov-"}})
    assert spec.publish_repo_id(Recipe.model_validate(minimal(name="x"))) == "org/ov-x"
    own = Recipe.model_validate(minimal(output={"publish": {"repo_id": "me/y"}}))
    assert spec.publish_repo_id(own) == "me/y"
    with pytest.raises(ValidationError):
        PipelineSpec.model_validate({"recipes": []})
    with pytest.raises(ValidationError):
        PipelineSpec.model_validate({"recipes": ["a.yaml"], "publish": {"repo_id_prefix": "noslash"}})


# ------------------------------------------------------------------------- int8_static (nncf.quantize)


def test_int8_static_defaults_and_quantize_kwargs():
    p = PartCompression(mode="int8_static")
    assert p.is_static and not p.is_int4 and p.group_size == -1
    assert (p.preset, p.model_type, p.fast_bias_correction, p.smooth_quant_alpha) == (
        "performance", "transformer", True, None)
    assert p.data_aware and p.data_aware_options() == ["mode"]
    assert p.quantize_kwargs() == {"preset": "performance", "fast_bias_correction": True,
                                   "model_type": "transformer"}
    q = PartCompression(mode="int8_static", preset="mixed", model_type="generic", fast_bias_correction=False,
                        smooth_quant_alpha=-1, ignored_scope={"types": ["ScaledDotProductAttention"]})
    assert q.quantize_kwargs() == {"preset": "mixed", "fast_bias_correction": False, "smooth_quant_alpha": -1.0,
                                   "ignored_scope": {"names": [], "patterns": [],
                                                     "types": ["ScaledDotProductAttention"]}}
    none = PartCompression(mode="int8_static", bias_correction=False)
    assert none.fast_bias_correction is None
    assert none.quantize_kwargs() == {"preset": "performance", "bias_correction": False, "model_type": "transformer"}
    with pytest.raises(ValidationError, match="bias_correction: false runs none; remove fast_bias_correction"):
        PartCompression(mode="int8_static", bias_correction=False, fast_bias_correction=True)
    with pytest.raises(ValidationError, match="bias_correction only applies to int8_static"):
        PartCompression(mode="int8_sym", bias_correction=False)
    with pytest.raises(ValueError, match="use quantize_kwargs"):
        p.nncf_kwargs()
    with pytest.raises(ValueError, match="use nncf_kwargs"):
        PartCompression(mode="int8_sym").quantize_kwargs()


def test_int8_static_needs_calibration():
    data = minimal(compression={"image_encoder": {"mode": "int8_static"}})
    assert errors_of(data) == [(("compression", "image_encoder", "mode"),
                                "mode int8_static is data-aware and needs a top-level calibration block "
                                "(e.g. calibration: {source: builtin})")]
    assert Recipe.model_validate({**data, "calibration": {"source": "builtin"}}).compression.image_encoder.is_static


def test_int8_static_rejects_weight_compression_options_and_vice_versa():
    errs = errors_of(minimal(calibration={}, compression={
        "image_encoder": {"mode": "int8_static", "group_size": 64, "ratio": 0.5, "awq": True},
        "llm": {"mode": "int4_sym", "preset": "mixed", "smooth_quant_alpha": 0.5}}))
    assert sorted((loc[1], loc[-1]) for loc, _ in errs) == [
        ("image_encoder", "awq"), ("image_encoder", "group_size"), ("image_encoder", "ratio"),
        ("llm", "preset"), ("llm", "smooth_quant_alpha")]
    assert ("preset only applies to int8_static (nncf.quantize), not int4_sym; remove preset"
            in [m for _, m in errs])


@pytest.mark.parametrize("bad", [{"preset": "fast"}, {"model_type": "cnn"}, {"smooth_quant_alpha": 1.5}])
def test_int8_static_option_values_checked(bad):
    [(loc, _)] = errors_of(minimal(calibration={}, compression={"image_encoder": {"mode": "int8_static", **bad}}))
    assert loc == ("compression", "image_encoder", *bad)
