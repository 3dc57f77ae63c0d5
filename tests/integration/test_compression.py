"""Weight compression of the tiny synthetic MiniCPM-V-2 IRs: golden bit widths per IR (like optimum-intel's
``test_quantization.py``), NNCF's own bit-width table vs ours, data-aware methods through the compress step's
code path with the builtin calibration set, compression.json, and ``ovexport inspect``.

Tiny architecture (``synth.TINY_OVERRIDES``), what the golden numbers count:
- language model: hidden 128, MLP 256, 2 layers x 7 linears (q, k, v, o: 128x128 = 16384 parameters each;
  gate, up, down: 128x256 = 32768 each; 163840 per layer) + lm_head 1024x128 = 131072 -> 15 weight layers,
  458752 parameters. The token embedding lives in the text-embeddings IR. NNCF's ratio-defining layers in
  int4 modes are the 14 decoder linears (327680 parameters): the last MatMul, lm_head, is kept in the backup
  mode unless all_layers.
- image encoder: 2 SigLIP blocks x 4 linears (qkv, proj, fc1, fc2) + patch-embedding Convolution + resampler
  (kv_proj, attention q/k/v in-projections, out_proj, proj) -> 15 weight layers, 193280 parameters.
- text embeddings: one Gather, 1024x128 = 131072 parameters.
NNCF's mixed precision adds layers to int4 in increasing order of sensitivity and stops at the first layer
that would bring the int4 share of ratio-defining parameters to >= ratio.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ovexport.bundle.layout import COMPRESSION
from ovexport.exporter.inspect import format_table, merged_report, weight_bit_stats, weight_layers
from ovexport.recipe.load import load_recipe
from ovexport.parts import PARTS, part as part_named
from ovexport.steps.compress import compress_part, compress_part_irs, part_irs

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "recipes"
TINY_LLM_RATIO_DEFINING = 14


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory) -> dict[str, Path]:
    """The compress step's inputs for the tiny synthetic checkpoint: checkpoint + three fp32 IRs."""
    from ovexport.exporter.convert import export_irs
    from ovexport.models.registry import get_family

    root = tmp_path_factory.mktemp("tiny-compression")
    ckpt = get_family("minicpmv2").write_synthetic(root / "checkpoint", size="tiny", seed=0)
    dirs = export_irs(ckpt, lambda part: root / part_named(part).source_artifact)
    return {"checkpoint": Path(ckpt), **{part_named(p).source_artifact: d for p, d in dirs.items()}}


def _recipe(name: str, overrides=()):
    return load_recipe(RECIPES / f"{name}.yaml", list(overrides))


def _layers(counts: dict) -> tuple[int, int, int]:
    return counts["int4"]["layers"], counts["int8"]["layers"], counts["float"]["layers"]


# ---------------------------------------------------------------------------- NNCF's table, parsed

_ROW = re.compile(r"│\s*(?P<mode>[^│]+?)\s*│\s*(?P<all>\d+% \(\d+ / \d+\))\s*│\s*(?P<ratio>\d+% \(\d+ / \d+\))\s*│")


def parse_nncf_table(text: str) -> dict[str, tuple[str, str]]:
    """{"int4"|"int8"|"float": ("54% (158 / 281)", "60% (158 / 280)")} from NNCF's logged table."""
    rows: dict[str, tuple[str, str]] = {}
    for m in _ROW.finditer(text):
        mode = m["mode"].strip()
        if mode.startswith("Weight compression mode"):
            continue
        kind = "int4" if mode.startswith(("int4", "nf4")) else "int8" if mode.startswith("int8") else "float"
        assert kind not in rows, f"several {kind} rows (e.g. adjusted group sizes): compare by hand\n{text}"
        rows[kind] = (m["all"], m["ratio"])
    return rows


def assert_matches_nncf(report: dict) -> None:
    """Our IR-derived table equals the one NNCF logged: every row, both columns, same rounding."""
    assert report["nncf_table"], "NNCF's bit-width table was not captured"
    nncf = parse_nncf_table(report["nncf_table"])
    ours = {row[0]: (row[1], row[2]) for row in format_table(report["weights"], report["ratio_defining"])}
    assert ours == nncf, f"ours {ours}\nNNCF {report['nncf_table']}"


# ------------------------------------------------------------------------------------ golden numbers

# case: (recipe, --set overrides, {part: (int4 layers, int8 layers, float layers)},
#        {part: ratio-defining (int4, int8, float)} for compressed parts)
GOLDEN = {
    # INT4_SYM group 16 ratio 0.6 (the shipped recipe): the data-free ranking (weight quantization error of
    # the int8 backup) puts layer 0 k/gate/up and layer 1 v/o/gate/up first: 3 x 16384 + 4 x 32768 =
    # 180224 = 55.0% of the 327680 ratio-defining parameters; any next layer reaches >= 60% -> 7 int4.
    # int8: the other 7 decoder linears + lm_head = 8. Image encoder and embeddings stay fp32.
    "tiny-int4": ("tiny-minicpmv2-int4", [],
                  {"llm": (7, 8, 0), "image_encoder": (0, 0, 16), "text_embeddings": (0, 0, 1)},
                  {"llm": (7, 7, 0)}),
    # INT8_ASYM per-channel compresses every weight layer, LLM (15) and image encoder (16: the Convolution, the 8
    # block linears and the position-table product of the vision IR, the resampler's 6)
    "tiny-int8": ("tiny-minicpmv2-int8", [],
                  {"llm": (0, 15, 0), "image_encoder": (0, 16, 0), "text_embeddings": (0, 0, 1)},
                  {"llm": (0, 15, 0), "image_encoder": (0, 16, 0)}),
    # no compression at all
    "tiny-fp32": ("tiny-minicpmv2-fp32", [],
                  {"llm": (0, 0, 15), "image_encoder": (0, 0, 16), "text_embeddings": (0, 0, 1)}, {}),
    # ratio 0.8: layer 0 q/k/v/o/gate/up + layer 1 q/v/o/gate/up = 7 x 16384 + 4 x 32768 = 245760 = 75.0%;
    # any next layer reaches >= 80% -> 11 int4; int8 = layer 0 down, layer 1 k/down + lm_head = 4
    "ratio-0.8": ("tiny-minicpmv2-int4", ["compression.llm.ratio=0.8"],
                  {"llm": (11, 4, 0)}, {"llm": (11, 3, 0)}),
    # group size 32: the data-free sensitivity is the int8-backup error, independent of the group size,
    # so the same 7 layers go to int4 (in groups of 32)
    "group-32": ("tiny-minicpmv2-int4", ["compression.llm.group_size=32"],
                 {"llm": (7, 8, 0)}, {"llm": (7, 7, 0)}),
    # ignored scope: both down_proj stay fp32 (2 float layers) and leave the ratio-defining set (12 layers,
    # 262144 parameters); int4: layer 0 gate/up, layer 1 o/gate/up = 16384 + 4 x 32768 = 147456 = 56.25%,
    # next >= 60%; int8: the other 7 ratio-defining + lm_head = 8
    "ignored-scope": ("tiny-minicpmv2-int4", ['compression.llm.ignored_scope.patterns=[".*mlp\\\\.down_proj.*"]'],
                      {"llm": (5, 8, 2)}, {"llm": (5, 7, 0)}),
    # all_layers: lm_head becomes ratio-defining (15 layers, 458752 parameters) and, the least sensitive,
    # goes to int4 first: lm_head + layer 0 gate + layer 1 o/gate/up = 131072 + 16384 + 3 x 32768 = 245760 =
    # 53.6%; the next (an MLP projection, 32768) would reach 60.7% -> 5 int4, 10 int8
    "all-layers": ("tiny-minicpmv2-int4", ["compression.llm.all_layers=true"],
                   {"llm": (5, 10, 0)}, {"llm": (5, 10, 0)}),
    # int4 LLM as shipped + INT8_ASYM image encoder: all 16 image-encoder layers (its two IRs) int8
    "image-encoder-int8": ("tiny-minicpmv2-int4", ["compression.image_encoder={mode: int8_asym}"],
                           {"llm": (7, 8, 0), "image_encoder": (0, 16, 0)},
                           {"llm": (7, 7, 0), "image_encoder": (0, 16, 0)}),
    # INT8_ASYM text embeddings: the one Gather in int8
    "text-embeddings-int8": ("tiny-minicpmv2-fp32", ["compression.text_embeddings={mode: int8_asym}"],
                             {"text_embeddings": (0, 1, 0)}, {"text_embeddings": (0, 1, 0)}),
}


@pytest.mark.parametrize("case", list(GOLDEN))
def test_golden_bit_widths(tiny_inputs, tmp_path, case):
    import openvino as ov

    from ovexport.exporter.convert import save_ir

    name, overrides, golden, golden_ratio = GOLDEN[case]
    recipe = _recipe(name, overrides)
    core = ov.Core()
    for p in PARTS:
        part = p.key
        if part not in golden:
            continue
        policy = recipe.compression.parts().get(part)
        irs = part_irs(tiny_inputs, part)
        if policy is None:
            stats = merged_report({ir: {"weights": weight_bit_stats(core.read_model(tiny_inputs[p.source_artifact] / ir))}
                                   for ir in irs})["weights"]
            assert _layers(stats) == golden[part], part
            assert part not in golden_ratio
            continue
        models, report = compress_part_irs(recipe, part, policy, tiny_inputs)
        assert _layers(report["weights"]) == golden[part], part
        assert _layers(report["ratio_defining"]) == golden_ratio[part], part
        for ir, model in models.items():
            assert_matches_nncf(report["irs"][ir] if len(models) > 1 else report)
            # the saved IR keeps the low-bit element types
            save_ir(model, tmp_path, ir)
            saved = weight_bit_stats(core.read_model(tmp_path / ir))
            assert saved == (report["irs"][ir] if len(models) > 1 else report)["weights"]
    if case == "tiny-int4":   # the lm_head (last MatMul) is the backup layer
        assert weight_layers(model)[-1].kind == "int8"


def test_sixteen_bit_export_counts_like_nncf(tiny_inputs):
    """The shipped full-size recipes export fp16 weights (Constant f16 -> Convert -> MatMul); the counting
    must find the same weights there, before and after compression, as NNCF does."""
    from ovexport.exporter.compress import compress_model, nncf_table
    from ovexport.exporter.convert import convert_part
    from ovexport.exporter.inspect import compression_report
    from ovexport.exporter.stateful import make_stateful
    from ovexport.models.registry import get_family

    spec = get_family("minicpmv2").part_specs(tiny_inputs["checkpoint"], weight_dtype="fp16")["llm"]
    model = convert_part(spec, "fp16")
    make_stateful(model, spec.stateful)
    before = compression_report(model, None)
    assert _layers(before["weights"]) == (0, 0, 15) and before["weights"]["float"]["params"] == 458752
    policy = _recipe("tiny-minicpmv2-int4").compression.llm
    messages: list[str] = []
    model = compress_model(model, policy, log_messages=messages)
    report = {**compression_report(model, policy), "nncf_table": nncf_table(messages)}
    assert _layers(report["weights"]) == (7, 8, 0)   # same data-free choice as from fp32 weights
    assert_matches_nncf(report)


# ------------------------------------------------------------------------------------ data-aware

DATA_AWARE_BASE = ["calibration={source: builtin, num_samples: 2}", "compression.llm.ratio=1.0"]


def _logits(model, item) -> np.ndarray:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    req = compiled.create_infer_request()
    req.infer({k: v for k, v in item.items() if k in ("inputs_embeds", "attention_mask", "position_ids", "beam_idx")})
    return req.get_tensor("logits").data.copy()


@pytest.fixture(scope="module")
def data_free_llm(tiny_inputs):
    """int4_sym group 16 ratio 1.0 without data, and one calibration prefill to compare outputs on."""
    from ovexport.calibration import calibration_items

    recipe = _recipe("tiny-minicpmv2-int4", DATA_AWARE_BASE)
    model, report = compress_part(recipe, "llm", recipe.compression.llm, tiny_inputs)
    item = calibration_items(recipe, "llm", tiny_inputs, decode_steps=0)[0]
    return _logits(model, item), item


@pytest.mark.parametrize("method", ["awq", "scale_estimation", "gptq", "lora_correction"])
def test_data_aware_method_runs_on_tiny_llm(tiny_inputs, data_free_llm, method):
    recipe = _recipe("tiny-minicpmv2-int4", [*DATA_AWARE_BASE, f"compression.llm.{method}=true"])
    policy = recipe.compression.llm
    assert policy.data_aware
    logs: list[str] = []
    model, report = compress_part(recipe, "llm", policy, tiny_inputs, logs.append)
    # ratio 1.0: all 14 decoder linears int4, lm_head int8 (backup) -- with or without data
    assert _layers(report["weights"]) == (14, 1, 0)
    assert_matches_nncf(report)
    cal = report["calibration"]
    assert cal["source"] == "builtin" and cal["num_samples"] == 2 and cal["options"] == [method]
    if method == "gptq":   # prefill items only (see ovexport.calibration.model_inputs)
        assert cal["items"] == 2
    else:                  # 2 prefills + up to 3 greedy decode steps each
        assert 2 < cal["items"] <= 8
    assert cal["subset_size"] == cal["items"]
    if method == "lora_correction":   # two int8 adapter matrices per int4 layer, not in NNCF's table
        assert report["lora_adapters"]["layers"] == 2 * 14
    # the method changed the compressed weights: outputs differ from the data-free compression
    base_logits, item = data_free_llm
    logits = _logits(model, item)
    assert np.isfinite(logits).all()
    assert not np.allclose(logits, base_logits, atol=1e-5), f"{method} left the data-free result unchanged"


@pytest.mark.parametrize("metric", ["hessian_input_activation", "mean_activation_variance"])
def test_data_aware_sensitivity_metric(tiny_inputs, monkeypatch, metric):
    """The activation-based criterion scores every ratio-defining layer from the calibration activations."""
    import nncf
    from nncf.quantization.algorithms.weight_compression.mixed_precision import MIXED_PRECISION_CRITERIA

    criterion = MIXED_PRECISION_CRITERIA.get(nncf.SensitivityMetric(metric))
    original = criterion._calc_activation_sensitivity
    scores: list[float] = []

    def spy(self, *args, **kwargs):
        value = original(self, *args, **kwargs)
        scores.append(float(value))
        return value

    monkeypatch.setattr(criterion, "_calc_activation_sensitivity", spy)
    recipe = _recipe("tiny-minicpmv2-int4", ["calibration={source: builtin, num_samples: 3}",
                                             f"compression.llm.sensitivity_metric={metric}"])
    model, report = compress_part(recipe, "llm", recipe.compression.llm, tiny_inputs)
    assert len(scores) == TINY_LLM_RATIO_DEFINING
    assert all(np.isfinite(s) and s > 0 for s in scores) and len(set(scores)) > 1
    int4, int8, fp = _layers(report["weights"])
    assert int4 > 0 and int4 + int8 == 15 and fp == 0
    ratio = report["ratio_defining"]
    share = ratio["int4"]["params"] / (ratio["int4"]["params"] + ratio["int8"]["params"])
    assert 0.6 - 32768 / 327680 <= share < 0.6    # greedy: under the ratio, by less than one layer
    assert weight_layers(model)[-1].kind == "int8"  # lm_head
    assert_matches_nncf(report)


def test_image_encoder_data_aware(tiny_inputs):
    recipe = _recipe("tiny-minicpmv2-int4", [
        "calibration={source: builtin, num_samples: 2}", "compression.llm=null",
        "compression.image_encoder={mode: int4_sym, group_size: 16, ratio: 0.8, scale_estimation: true, "
        "sensitivity_metric: hessian_input_activation, group_size_fallback: ignore}"])
    models, report = compress_part_irs(recipe, "image_encoder", recipe.compression.image_encoder, tiny_inputs)
    int4, int8, fp = _layers(report["weights"])
    assert int4 > 0 and int4 + int8 + fp == 16
    # the position-table product reduces over 27 x 27 = 729 rows, no multiple of 16: NNCF's "ignore" fallback
    # leaves it uncompressed (without the fallback NNCF refuses the whole IR)
    vision = report["irs"]["openvino_vision_embeddings_model.xml"]
    assert vision["weights"]["float"]["layers"] == fp == 1
    for ir in models:
        # 2 builtin samples: a 448x448 image (1 encoder input) and a 640x480 one (source + 2 slices); the
        # resampler's inputs are the vision IR's outputs for the same 4 images
        assert report["irs"][ir]["calibration"]["items"] == 4
        assert_matches_nncf(report["irs"][ir])


def test_language_model_items_follow_nncf_state_semantics(tiny_inputs):
    """Decode items carry NNCF's reset key = False and, run in order by NNCF's own engine on the stateful IR,
    continue their prefill: each decode step's input is the greedy token of the previous step's logits."""
    import openvino as ov
    from nncf.definitions import NNCF_DATASET_RESET_STATE_KEY as RESET
    from nncf.openvino.engine import OVNativeEngine

    from ovexport.calibration import calibration_items

    recipe = _recipe("tiny-minicpmv2-int4", ["calibration={source: builtin, num_samples: 2}",
                                             "compression.llm.awq=true"])
    items = calibration_items(recipe, "llm", tiny_inputs)
    flags = [it[RESET] for it in items]
    assert flags.count(True) == 2 and flags[0] and flags.count(False) > 0   # 2 prefills, decode steps after each
    assert all(it["inputs_embeds"].dtype == np.float32 and it["beam_idx"].dtype == np.int32 for it in items)
    core = ov.Core()
    lm = core.read_model(tiny_inputs["llm_stateful_ir"] / part_named("llm").ir_file)
    text = core.compile_model(tiny_inputs["text_embeddings_ir"] / part_named("text_embeddings").ir_file, "CPU",
                              {"INFERENCE_PRECISION_HINT": "f32"})
    engine = OVNativeEngine(lm)
    prev = None
    for it in items:
        t = it["position_ids"][0, -1] + 1
        assert it["attention_mask"].shape == (1, t)
        out = engine.infer(dict(it))
        if not it[RESET]:
            tok = int(prev[0, -1].argmax())
            expected = text({"input_ids": np.array([[tok]], np.int64)})[0] * np.float32(12.0)
            np.testing.assert_allclose(it["inputs_embeds"], expected, rtol=1e-6)
        prev = out["logits"]


# --------------------------------------------------------------------- the step, compression.json, report


def _inspect(path: Path, *flags: str) -> str:
    """``ovexport inspect PATH FLAGS``'s output."""
    from click.testing import CliRunner

    from ovexport.cli import cli

    r = CliRunner().invoke(cli, ["inspect", str(path), *flags], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r.stdout


def test_compress_step_writes_distribution_and_inspect_prints_it(tiny_inputs, tmp_path):
    from rich.console import Console

    from ovexport.engine.step import StepContext
    from ovexport.steps.compress import Compress

    recipe = _recipe("tiny-minicpmv2-int4", ["compression.image_encoder={mode: int8_asym}"])
    out = tmp_path / "compressed_ir"
    out.mkdir()
    ctx = StepContext(recipe=recipe, inputs=dict(tiny_inputs), out=out, work=tmp_path, console=Console(quiet=True))
    metrics = Compress().run(ctx)
    assert metrics["llm"] == {"int4": 7, "int8": 8}
    data = json.loads((out / COMPRESSION).read_text())
    llm = data["llm"]
    assert llm["policy"]["mode"] == "int4_sym" and llm["policy"]["ratio"] == 0.6
    assert llm["weights"]["int4"] == {"layers": 7, "params": 180224}
    assert llm["weights"]["int8"] == {"layers": 8, "params": 278528}
    # % of all parameters (layers) and % of ratio-defining parameters (layers), as NNCF shows them
    assert llm["distribution"]["int4"] == {"params_pct": 39.29, "layers_pct": 46.67,
                                           "ratio_defining_params_pct": 55.0, "ratio_defining_layers_pct": 50.0}
    assert llm["distribution"]["int8"] == {"params_pct": 60.71, "layers_pct": 53.33,
                                           "ratio_defining_params_pct": 45.0, "ratio_defining_layers_pct": 50.0}
    assert "39% (7 / 15)" in llm["nncf_table"] and "55% (7 / 14)" in llm["nncf_table"]
    image = data["image_encoder"]
    assert image["weights"]["int8"]["layers"] == 16 and image["files"] == list(image["irs"])
    assert [image["irs"][ir]["weights"]["int8"]["layers"] for ir in image["files"]] == [10, 6]
    te = data["text_embeddings"]
    assert te["policy"] is None and te["ratio_defining"] is None and te["weights"]["float"]["layers"] == 1
    for p in PARTS:
        assert all((out / f).is_file() for ir in data[p.key]["files"] for f in (ir, ir[:-4] + ".bin"))

    text = _inspect(out)
    assert "openvino_language_model.xml" in text and "int4_sym, group 16, ratio 0.6" in text
    assert re.search(r"int4\s*\| 39% \(7 / 15\)\s*\| 55% \(7 / 14\)", text)
    assert re.search(r"int8\s*\| 61% \(8 / 15\)\s*\| 45% \(7 / 14\)", text)
    assert re.search(r"float\s*\| 100% \(1 / 1\)", text)     # text embeddings, uncompressed
    # an IR alone (no compression.json beside it): the policy is inferred from the IR, same numbers
    alone = tmp_path / "alone"
    alone.mkdir()
    for f in (part_named("llm").ir_file, part_named("llm").ir_file[:-4] + ".bin"):
        (alone / f).write_bytes((out / f).read_bytes())
    (res,) = json.loads(_inspect(alone / part_named("llm").ir_file, "--json"))
    assert res["policy_inferred"] and res["rows"] == [["int8", "61% (8 / 15)", "45% (7 / 14)"],
                                                      ["int4", "39% (7 / 15)", "55% (7 / 14)"]]
    assert "| int4 | 39% (7 / 15) | 55% (7 / 14) |" in _inspect(out, "--markdown")


def test_inspect_of_a_bundle_directory_skips_its_tokenizer_irs(tiny_checkpoint, tiny_irs_int4, tmp_path):
    """A bundle also holds the tokenizer as OpenVINO IRs (openvino-tokenizers' operations, no weights): `ovexport
    inspect BUNDLE` reports the model's IRs and leaves those out instead of failing to read them."""
    from ovexport.models.minicpmv2.publishing import write_ov_tokenizers

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for f in tiny_irs_int4.iterdir():
        (bundle / f.name).write_bytes(f.read_bytes())
    names = write_ov_tokenizers(tiny_checkpoint, bundle)
    assert all((bundle / n).is_file() for n in names)
    reports = json.loads(_inspect(bundle, "--json"))
    model_irs = {p.name for p in bundle.glob("*.xml")} - set(names)
    assert model_irs and {r["ir"] for r in reports} == model_irs and len(reports) == len(model_irs)


def _runtime_precisions(compiled, layer_type: str) -> list[str]:
    """``runtimePrecision`` of every ``layer_type`` node the CPU plugin will execute."""
    out = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == layer_type:
            out.append(info["runtimePrecision"].astype(str))
    return out


# int8_static on the tiny image encoder (its two IRs): NNCF quantizes 15 of the 16 weight layers (all but the
# resampler's query in-projection, whose input is the learned query: no activation to quantize), inserts 20
# FakeQuantize nodes (14 in the vision IR, 6 in the resampler's), and the CPU plugin runs 14 FullyConnected layers in
# int8 (the 8 block linears and the position-table product, the resampler's 5; the 15th weight is the
# patch-embedding Convolution).
GOLDEN_STATIC_LAYERS = (0, 15, 1)
GOLDEN_STATIC_FQ = 20
GOLDEN_STATIC_INT8_FC = 14


def test_image_encoder_int8_static(tiny_inputs):
    """nncf.quantize through the compress step's code path: every weight stored in int8, activations quantized
    (FakeQuantize), the plugin runs the linears as int8 GEMMs, and the output stays close to the fp32 IR's."""
    import openvino as ov

    from ovexport.calibration import calibration_items

    recipe = _recipe("tiny-minicpmv2-int4", ["calibration={source: builtin, num_samples: 2}", "compression.llm=null",
                                             "compression.image_encoder={mode: int8_static}"])
    models, report = compress_part_irs(recipe, "image_encoder", recipe.compression.image_encoder, tiny_inputs)
    assert _layers(report["weights"]) == GOLDEN_STATIC_LAYERS
    for entry in report["irs"].values():
        assert entry["calibration"]["items"] == 4 and entry["calibration"]["options"] == ["mode"]
    assert report["policy"]["mode"] == "int8_static" and report["policy"]["preset"] == "performance"
    assert sum(op.get_type_name() == "FakeQuantize" for m in models.values()
               for op in m.get_ordered_ops()) == GOLDEN_STATIC_FQ
    core = ov.Core()
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    quantized = {ir: core.compile_model(m, "CPU", f32) for ir, m in models.items()}
    assert sum(_runtime_precisions(q, "FullyConnected").count("i8") for q in quantized.values()) == \
        GOLDEN_STATIC_INT8_FC
    for ir, q in quantized.items():   # each IR on its own calibration inputs (images like the calibration set)
        reference = core.compile_model(tiny_inputs["image_encoder_ir"] / ir, "CPU", f32)
        for item in calibration_items(recipe, "image_encoder", tiny_inputs, ir=ir)[:2]:
            a, b = (np.asarray(c(item)[0], np.float64).ravel() for c in (reference, q))
            assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) > 0.99, ir
            assert not np.allclose(a, b, atol=1e-6)   # it did change something


def test_int8_static_without_bias_correction(tiny_inputs):
    """``bias_correction: false`` (what keeps the full-size image encoder's quantization under 10 GB) quantizes all
    the same, and gives another model than the default's fast bias correction: the biases are left as exported."""
    import openvino as ov

    from ovexport.calibration import calibration_items

    def quantized(policy: str):
        recipe = _recipe("tiny-minicpmv2-int4", ["calibration={source: builtin, num_samples: 2}",
                                                 "compression.llm=null", f"compression.image_encoder={policy}"])
        models, _ = compress_part_irs(recipe, "image_encoder", recipe.compression.image_encoder, tiny_inputs)
        return recipe, models

    recipe, plain = quantized("{mode: int8_static, bias_correction: false}")
    _, corrected = quantized("{mode: int8_static}")
    ir = next(iter(plain))
    assert sum(op.get_type_name() == "FakeQuantize" for op in plain[ir].get_ordered_ops()) > 0
    core = ov.Core()
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}
    item = calibration_items(recipe, "image_encoder", tiny_inputs, ir=ir)[0]
    a, b = (np.asarray(core.compile_model(m[ir], "CPU", f32)(item)[0]) for m in (plain, corrected))
    assert not np.array_equal(a, b)


def test_int8_static_options_reach_nncf():
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    from ovexport.exporter.compress import to_nncf_quantize
    from ovexport.recipe.schema import PartCompression

    policy = PartCompression(mode="int8_static", preset="mixed", smooth_quant_alpha=-1,
                             ignored_scope={"types": ["ScaledDotProductAttention"]})
    kw = to_nncf_quantize(policy.quantize_kwargs())
    assert kw["preset"] is nncf.QuantizationPreset.MIXED and kw["model_type"] is nncf.ModelType.TRANSFORMER
    assert kw["fast_bias_correction"] is True
    assert isinstance(kw["advanced_parameters"], AdvancedQuantizationParameters)
    assert kw["advanced_parameters"].smooth_quant_alphas.matmul == -1
    assert kw["ignored_scope"].types == ["ScaledDotProductAttention"]
    assert kw["advanced_parameters"].disable_bias_correction is False
    generic = to_nncf_quantize(PartCompression(mode="int8_static", model_type="generic").quantize_kwargs())
    assert "model_type" not in generic and "advanced_parameters" not in generic
    none = to_nncf_quantize(PartCompression(mode="int8_static", bias_correction=False,
                                            smooth_quant_alpha=0.5).quantize_kwargs())
    assert "fast_bias_correction" not in none and "bias_correction" not in none
    assert none["advanced_parameters"].disable_bias_correction is True
    assert none["advanced_parameters"].smooth_quant_alphas.matmul == 0.5
