"""Issue 3, validators: parity checks of tiny IRs against PyTorch, their gates, failures and the bundle re-check."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from ovexport.bundle.layout import LANGUAGE_MODEL, MANIFEST, TEXT_EMBEDDINGS, VALIDATION, VISION_EMBEDDINGS
from ovexport.errors import BundleError, ValidationFailed
from ovexport.recipe.schema import ValidationSpec
from ovexport.validators.base import gate, kl_divergence, top1_agreement
from ovexport.validators.bundle_check import revalidate_bundle
from ovexport.validators.end_to_end import token_agreement
from ovexport.validators.run_checks import raise_if_failed, run_validation, write_report

pytestmark = pytest.mark.integration

# what recipes/tiny-minicpmv2-int4.yaml-style gates look like for a compressed LLM (see docs/validation.md)
INT4_THRESHOLDS = {"llm": {"max_abs_diff": None, "min_cosine": 0.97, "min_top1_agreement": 0.6, "max_kl": 0.5},
                   "end_to_end": {"min_token_agreement": None}}


def copy_irs(src: Path, dst: Path) -> Path:
    """A private copy of a shared IR directory (tests rewrite files: no hard links)."""
    shutil.copytree(src, dst)
    return dst


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def spec_with(thresholds: dict | None = None, **kw) -> ValidationSpec:
    return ValidationSpec.model_validate({**kw, "thresholds": thresholds or {}})


def check(report: dict, name: str) -> dict:
    return next(c for c in report["checks"] if c["name"] == name)


def failed_metrics(report: dict) -> set[str]:
    return {f"{c['name']}.{g['metric']}" for c in report["checks"] for g in c["gates"] if not g["passed"]}


# ------------------------------------------------------------------------------------------ helpers


def test_gate_and_metric_helpers():
    assert gate("max_abs_diff", 0.5, None, "max") is None           # measured, not gated
    g = gate("max_abs_diff", 0.31, 1e-3, "max")
    assert not g.passed and g.describe("llm") == "llm.max_abs_diff 0.31 > 0.001"
    assert gate("token_agreement", 0.5, 1.0, "min").describe("end_to_end") == "end_to_end.token_agreement 0.5 < 1"
    assert gate("x", float("nan"), 1.0, "max").passed is False       # unmeasurable never passes
    assert gate("x", 0.0, 0.0, "max").passed
    a = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    assert kl_divergence(a, a) == 0.0 and kl_divergence(a, a[:, ::-1]) > 0
    assert top1_agreement(a, a) == 1.0 and top1_agreement(a, -a) == 0.0
    # up to and including the first EOS (2) of either side
    assert token_agreement([5, 6, 7, 8], [5, 6, 7, 8], {2}) == (1.0, -1, 4)
    assert token_agreement([5, 6, 2], [5, 6, 2], {2}) == (1.0, -1, 3)
    assert token_agreement([5, 9, 7, 8], [5, 6, 7, 8], {2}) == (0.75, 1, 4)
    assert token_agreement([5, 2], [5, 7, 8, 9], {2}) == (0.5, 1, 2)


# ------------------------------------------------------------------------------------------ fp32


@pytest.fixture(scope="module")
def fp32_report(tiny_checkpoint, tiny_irs_fp32) -> dict:
    return run_validation(tiny_checkpoint, tiny_irs_fp32, ValidationSpec(), console=quiet())


def test_every_check_passes_on_fp32_irs(fp32_report, tmp_path):
    r = fp32_report
    assert r["passed"] and r["status"] == "passed", r["failures"]
    assert [c["name"] for c in r["checks"]] == ["text_embeddings", "image_encoder", "llm", "end_to_end"]
    assert all(c["passed"] and c["gates"] and c["status"] == "passed" for c in r["checks"])
    assert r["not_gated"] == []
    assert r["ov_config"] == {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}
    assert check(r, "text_embeddings")["metrics"]["max_abs_diff"] == 0.0
    te = check(r, "text_embeddings")["details"]["edge_ids"]
    assert {te["bos"], te["eos"], te["<image>"], te["</image>"], te["<slice>"], te["</slice>"], te["last"]} == \
        {1, 2, 101, 102, 111, 112, 1023}
    assert set(range(101, 113)) <= set(te.values())   # every special id the tokenizer lists, by its piece
    cases = check(r, "image_encoder")["details"]["cases"]
    assert {"448x448", "378x378", "wide_source", "tall_source", "slices_batch3", "tiny_14x14"} <= set(cases)
    assert cases["378x378"]["small_inputs"]["tgt_size"] == [27, 27]
    assert cases["slices_batch3"]["inputs"]["pixel_values"][0] == 3
    llm = check(r, "llm")
    assert llm["metrics"]["reset_max_abs_diff"] == 0.0 and llm["metrics"]["top1_agreement"] == 1.0
    assert set(llm["details"]["segments"]) == {"prefill", "decode", "beam_prefill", "beam_reorder"}
    assert llm["details"]["images"] == 1 and llm["details"]["decode_steps"] == 4
    e2e = check(r, "end_to_end")
    grids = {k: v["grid"] for k, v in e2e["details"]["cases"].items()}
    assert grids == {"448x448": None, "1344x896": [3, 2], "896x448": [2, 1]}
    assert e2e["metrics"] == {"token_agreement": 1.0, "first_divergence": -1}
    # the process's peak RSS after each check: never falling, and at least what the tiny run holds
    peaks = r["peak_rss_after_check"]
    assert list(peaks) == ["text_embeddings", "image_encoder", "llm", "end_to_end"]
    assert list(peaks.values()) == sorted(peaks.values()) and peaks["text_embeddings"] > 50e6
    # the report is JSON as it is, and raise_if_failed lets it through
    path = write_report(r, tmp_path / VALIDATION)
    assert json.loads(path.read_text())["status"] == "passed"
    raise_if_failed(r)


def test_each_threshold_can_fail(tiny_checkpoint, tiny_irs_fp32):
    """Impossible thresholds on an exact export: each gate fails and is named with its numbers."""
    impossible = {"image_encoder": {"max_abs_diff": 0.0, "min_cosine": 1.0},
                  "llm": {"max_abs_diff": 0.0, "min_cosine": 1.0, "min_top1_agreement": 1.0, "max_kl": 0.0}}
    r = run_validation(tiny_checkpoint, tiny_irs_fp32, spec_with(impossible), console=quiet(),
                       checks=["image_encoder", "llm"])
    assert not r["passed"]
    assert failed_metrics(r) == {"image_encoder.max_abs_diff", "image_encoder.min_cosine", "llm.max_abs_diff",
                                 "llm.min_cosine", "llm.max_kl"}
    with pytest.raises(ValidationFailed) as exc:
        raise_if_failed(r, "out/validation.json")
    msg = str(exc.value)
    assert msg.startswith("validation failed: image_encoder.max_abs_diff ")
    assert "> 0;" in msg and "llm.min_cosine " in msg and "< 1" in msg and "llm.max_kl" in msg
    assert "\n" not in msg and "fix: look at out/validation.json" in msg and "validation: block" in msg
    assert exc.value.exit_code == 3
    # the table names the failing metrics
    console = quiet()
    from ovexport.validators.run_checks import print_report
    print_report(r, console)
    assert "FAIL" in console.file.getvalue() and "reset_max_abs_diff" in console.file.getvalue()


# ------------------------------------------------------------------------------------------ broken export


def _rewrite(xml: Path, edit) -> None:
    """Read an IR, let ``edit(model)`` change it, save it back (via a temporary name: the .bin is mapped)."""
    import openvino as ov

    model = ov.Core().read_model(xml)
    edit(model)
    tmp = xml.parent / "rewrite"
    tmp.mkdir()
    ov.save_model(model, tmp / xml.name, compress_to_fp16=False)
    del model
    for f in tmp.iterdir():
        f.replace(xml.parent / f.name)
    tmp.rmdir()


def _replace_const(op, port: int, fn) -> None:
    from openvino import opset13

    const = op.input(port).get_source_output().get_node()
    assert const.get_type_name() == "Constant"
    new = opset13.constant(fn(const.get_data().copy()))
    op.input(port).replace_source_output(new.output(0))


def scale_matmul_weight(model, name_part: str = "layers.0.mlp.down_proj", factor: float = 1.5) -> None:
    op = next(o for o in model.get_ordered_ops() if o.get_type_name() == "MatMul" and name_part in
              o.get_friendly_name())
    _replace_const(op, 1, lambda w: w * np.float32(factor))


def corrupt_embedding_row(model, row: int = -1) -> None:
    op = next(o for o in model.get_ordered_ops() if o.get_type_name() == "Gather")

    def edit(w):
        w[row] *= np.float32(1.5)
        return w
    _replace_const(op, 0, edit)


@pytest.fixture(scope="module")
def broken_irs(tmp_path_factory, tiny_irs_fp32) -> Path:
    d = copy_irs(tiny_irs_fp32, tmp_path_factory.mktemp("broken") / "irs")
    _rewrite(d / LANGUAGE_MODEL, scale_matmul_weight)
    _rewrite(d / TEXT_EMBEDDINGS, corrupt_embedding_row)   # the last id only: caught by the edge ids
    return d


def test_broken_export_fails_and_names_the_checks(tiny_checkpoint, broken_irs):
    r = run_validation(tiny_checkpoint, broken_irs, ValidationSpec(), console=quiet(),
                       checks=["text_embeddings", "llm", "end_to_end"])
    assert not r["passed"]
    te, llm = check(r, "text_embeddings"), check(r, "llm")
    assert not te["passed"] and te["details"]["mismatching_ids"] == 1
    assert te["details"]["edge_max_abs_diff"]["last"] > 0 and te["details"]["edge_max_abs_diff"]["bos"] == 0
    assert not llm["passed"] and llm["metrics"]["max_abs_diff"] > 1e-2
    assert llm["metrics"]["reset_max_abs_diff"] == 0.0   # deterministic, only wrong
    with pytest.raises(ValidationFailed) as exc:
        raise_if_failed(r)
    msg = str(exc.value)
    assert "text_embeddings.max_abs_diff" in msg and "llm.max_abs_diff" in msg and "> 0.001" in msg
    assert "image_encoder" not in msg


def test_an_ir_that_cannot_run_is_a_failed_check_not_a_crash(tiny_checkpoint, tiny_irs_fp32, tmp_path):
    d = copy_irs(tiny_irs_fp32, tmp_path / "irs")
    # the text-embeddings IR where the image encoder's first IR should be: wrong inputs
    for a, b in ((TEXT_EMBEDDINGS, VISION_EMBEDDINGS),):
        for ext in (".xml", ".bin"):
            shutil.copy2(d / (a[:-4] + ext), d / (b[:-4] + ext))
    r = run_validation(tiny_checkpoint, d, ValidationSpec(), console=quiet(), checks=["image_encoder"])
    assert not r["passed"] and "error" in r["checks"][0]["details"]
    with pytest.raises(ValidationFailed, match="image_encoder raised"):
        raise_if_failed(r)


def test_missing_ir_is_a_bundle_error(tiny_checkpoint, tmp_path):
    with pytest.raises(BundleError, match="has no openvino_text_embeddings_model.xml"):
        run_validation(tiny_checkpoint, tmp_path, ValidationSpec(), console=quiet())


# ------------------------------------------------------------------------------------------ memory


def test_checks_hold_one_reference_part_at_a_time(tiny_checkpoint, tiny_irs_fp32, monkeypatch):
    """The full-size reference's LLM (5.5 GB) and image encoder (0.8 GB) are never loaded together, the text
    embeddings check loads only the embedding table, and end_to_end compiles the image encoder apart from the LLM
    (docs/investigations/2026-12-05-export-memory.md): what keeps the validate step under 8 GB."""
    from ovexport.models.minicpmv2.torch_reference import TorchReference
    from ovexport.runtime.ov_models import BundleModels

    seen: list[tuple[str, bool, bool]] = []
    real_features, real_forward = TorchReference.image_features, TorchReference.greedy
    real_embed = TorchReference.text_embeddings

    def spy(name, fn):
        def wrapped(self, *a, **kw):
            seen.append((name, self._llm is not None, self._image_encoder is not None))
            return fn(self, *a, **kw)
        return wrapped

    compiled_with_encoder = []
    real_init = BundleModels.__init__

    def init(self, *a, image_encoder=True, **kw):
        compiled_with_encoder.append(image_encoder)
        real_init(self, *a, image_encoder=image_encoder, **kw)

    monkeypatch.setattr(TorchReference, "image_features", spy("image_features", real_features))
    monkeypatch.setattr(TorchReference, "greedy", spy("greedy", real_forward))
    monkeypatch.setattr(TorchReference, "text_embeddings", spy("text_embeddings", real_embed))
    monkeypatch.setattr(BundleModels, "__init__", init)
    r = run_validation(tiny_checkpoint, tiny_irs_fp32, ValidationSpec(), console=quiet(),
                       checks=["text_embeddings", "llm", "end_to_end"])
    assert r["failures"] == [] and r["not_gated"] == ["image_encoder"], r
    assert {name for name, _, _ in seen} == {"image_features", "greedy", "text_embeddings"}
    assert all(not llm for name, llm, _ in seen if name in ("image_features", "text_embeddings")), seen
    assert all(not encoder for name, _, encoder in seen if name == "greedy"), seen
    assert compiled_with_encoder == [False]


def test_image_encoder_is_freed_when_its_block_ends(tiny_checkpoint, tiny_irs_fp32, monkeypatch):
    """end_to_end keeps its ``encoder`` name bound after ``with ctx.image_encoder() as encoder``: the compiled IRs
    must go when the block ends all the same, or the full-size image encoder (4 GB in f32 with its buffers) stays
    under the LLM compiled next (docs/investigations/2026-12-05-export-memory.md)."""
    import gc
    import weakref

    from ovexport.validators.context import ValidationContext

    class Request:          # holds its model, as an OpenVINO infer request holds its compiled model
        def __init__(self, model):
            self.model, self.request = model, model.compiled.create_infer_request()

        def __getattr__(self, name):
            return getattr(self.request, name)

    class Tracked:
        def __init__(self, compiled):
            self.compiled = compiled

        def create_infer_request(self):
            return Request(self)

    made: list[weakref.ref] = []
    ctx = ValidationContext(tiny_checkpoint, tiny_irs_fp32, ValidationSpec(), console=quiet())
    real_compile = ValidationContext.compile

    def compile_tracked(self, xml_name):
        model = Tracked(real_compile(self, xml_name))
        made.append(weakref.ref(model))
        return model

    monkeypatch.setattr(ValidationContext, "compile", compile_tracked)
    with ctx.image_encoder() as encoder:
        assert made and all(ref() is not None for ref in made)
    gc.collect()
    assert encoder is not None and [ref() for ref in made] == [None] * len(made)


def test_reference_phases_give_the_same_numbers(tiny_checkpoint):
    """Features computed first, the embedding table alone and last-position logits: the same numbers as the
    reference computing everything at once."""
    import torch

    from ovexport.models.minicpmv2.torch_reference import TorchReference
    from ovexport.synthetic.images import synthetic_image

    ref = TorchReference(tiny_checkpoint)
    prepared = ref.prepare([{"role": "user", "content": "Describe this image."}],
                           synthetic_image(np.random.default_rng(1), 700, 400))
    together = ref.prefill_embeddings(prepared)
    tokens, logits = ref.greedy(prepared, 6)
    features = ref.image_features_of(prepared)
    assert len(features) == len(prepared.pixel_values) > 1
    ref.release("llm")
    ref.release("image_encoder")
    apart = ref.prefill_embeddings(prepared, features)
    assert ref._llm is None and torch.equal(apart, together)
    ids = np.asarray(prepared.input_ids)[None]
    table_only = ref.text_embeddings(ids)
    assert ref._llm is None
    np.testing.assert_array_equal(table_only, ref.llm.model.embed_tokens(torch.as_tensor(ids)).detach().float().numpy())
    tokens2, logits2 = ref.greedy(prepared, 6, features=features)
    assert tokens2 == tokens and all(np.array_equal(a, b) for a, b in zip(logits, logits2))
    t = together.shape[1]
    with torch.no_grad():
        full, _ = ref.llm(together, torch.ones(1, t, dtype=torch.int64), torch.arange(t)[None])
        last, _ = ref.llm(together, torch.ones(1, t, dtype=torch.int64), torch.arange(t)[None], last_only=True)
    assert last.shape[1] == 1 and torch.allclose(last[0, 0], full[0, -1], rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def tiny_bf16_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint stored in bf16, as the real one is (the tiny one is fp32)."""
    import torch
    from safetensors.torch import load_file, save_file

    out = tmp_path_factory.mktemp("tiny-bf16") / "ckpt"
    shutil.copytree(tiny_checkpoint, out)
    for shard in out.glob("*.safetensors"):
        save_file({k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in load_file(shard).items()},
                  str(shard))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "torch_dtype": "bfloat16"}))
    return out


def test_reference_reads_its_16bit_weights_from_the_checkpoint(tiny_bf16_checkpoint, monkeypatch):
    """The fp32 reference's 16-bit linear and embedding weights are views of the checkpoint, and each layer gives its
    weight's pages back after it ran (tests/unit/test_mapped_safetensors.py shows the pages leave the process): the
    numbers are those of the weights copied in."""
    import torch

    from ovexport.models.minicpmv2.fp32_compute import UpcastEmbedding, UpcastLinear, fp32_compute
    from ovexport.models.minicpmv2.parts import load_llm
    from ovexport.models.minicpmv2.torch_reference import TorchReference
    from ovexport.synthetic.images import synthetic_image
    from ovexport.util.mapped_safetensors import MappedSafetensors

    released: set[int] = set()
    real_release = MappedSafetensors.release

    def spy(self, t):
        released.add(t.data_ptr())
        real_release(self, t)

    monkeypatch.setattr(MappedSafetensors, "release", spy)
    ref = TorchReference(tiny_bf16_checkpoint)
    assert ref.weight_dtype == torch.bfloat16
    prepared = ref.prepare([{"role": "user", "content": "Describe this image."}],
                           synthetic_image(np.random.default_rng(3), 300, 200))
    features = ref.image_features_of(prepared)
    tokens, logits = ref.greedy(prepared, 4, features=features)
    shards = ref.llm.mapped_shards
    big = [m.weight for m in ref.llm.modules() if isinstance(m, (UpcastLinear, UpcastEmbedding))]
    assert len(big) > 10 and all(any(s.holds(w) for s in shards) for w in big)
    assert {w.data_ptr() for w in big} <= released
    ref._llm = fp32_compute(load_llm(tiny_bf16_checkpoint, ref.config, ref.weight_dtype))
    assert not getattr(ref._llm, "mapped_shards", None)
    tokens2, logits2 = ref.greedy(prepared, 4, features=features)
    assert tokens2 == tokens and all(np.array_equal(a, b) for a, b in zip(logits, logits2))


def test_models_opened_without_the_image_encoder_refuse_images(tiny_checkpoint, tiny_irs_fp32):
    from ovexport.errors import InputError
    from ovexport.models.registry import family_for
    from ovexport.runtime.ov_models import BundleModels

    family = family_for(tiny_checkpoint)
    models = BundleModels(tiny_irs_fp32, family=family, model_config=family.runtime(tiny_checkpoint).config,
                          image_encoder=False)
    assert models.image == {} and models.embed(np.array([[1, 2]])).shape[:2] == (1, 2)
    with pytest.raises(InputError, match="without the image encoder"):
        models.encode_images({})


# ------------------------------------------------------------------------------------------ int4


def test_int4_fails_fp32_thresholds_and_passes_int4_thresholds(tiny_checkpoint, tiny_irs_int4):
    strict = run_validation(tiny_checkpoint, tiny_irs_int4, ValidationSpec(), console=quiet(),
                            checks=["llm", "end_to_end"])
    m = check(strict, "llm")["metrics"]
    assert m["top1_agreement"] < 1.0 and m["max_abs_diff"] > 1e-2 and m["reset_max_abs_diff"] == 0.0
    assert {"llm.max_abs_diff", "llm.top1_agreement", "end_to_end.token_agreement"} <= failed_metrics(strict)
    with pytest.raises(ValidationFailed) as exc:
        raise_if_failed(strict)
    assert "llm.top1_agreement" in str(exc.value) and "< 1" in str(exc.value)

    relaxed = run_validation(tiny_checkpoint, tiny_irs_int4, spec_with(INT4_THRESHOLDS), console=quiet(),
                             checks=["llm", "end_to_end"])
    # nothing failed; the two checks that did not run leave their parts not gated
    assert relaxed["status"] == "not_gated" and relaxed["failures"] == [], relaxed["failures"]
    assert relaxed["not_gated"][:2] == ["text_embeddings", "image_encoder"]
    gated = {g["metric"] for g in check(relaxed, "llm")["gates"]}
    assert gated == {"min_cosine", "top1_agreement", "max_kl", "reset_max_abs_diff"}


# ------------------------------------------------------------------------------------------ bundle


@pytest.fixture()
def bundle(tmp_path, tiny_checkpoint, tiny_irs_fp32) -> Path:
    from ovexport.bundle.manifest import file_entries

    b = copy_irs(tiny_irs_fp32, tmp_path / "bundle")
    for f in ("config.json", "tokenizer.model", "tokenizer_config.json", "generation_config.json"):
        shutil.copy2(tiny_checkpoint / f, b / f)
    manifest = {"name": "t", "version": "0.1.0", "model_family": "minicpmv2",
                "source": {"checkpoint": str(tiny_checkpoint.resolve())},
                "recipe": {"validation": ValidationSpec().model_dump(mode="json")},
                "files": file_entries(b)}
    (b / MANIFEST).write_text(json.dumps(manifest))
    return b


def test_revalidate_bundle_passes_then_detects_truncation(bundle):
    r = revalidate_bundle(bundle, console=quiet(), checks=["text_embeddings"])
    assert r["failures"] == [] and r["files_verified"] == 12   # 4 IRs (xml + bin) and 4 checkpoint files
    assert (r["status"], r["not_gated"]) == ("not_gated", ["image_encoder", "llm", "end_to_end"])  # not run
    bin_file = bundle / "openvino_language_model.bin"
    data = bin_file.read_bytes()
    bin_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="openvino_language_model.bin is .*truncated") as exc:
        revalidate_bundle(bundle, console=quiet())
    assert "do not use it" in str(exc.value)


def test_revalidate_bundle_detects_tampering_and_missing_files(bundle):
    cfg = bundle / "config.json"
    text = cfg.read_text()
    cfg.write_text(text.replace('"scale_emb": 12', '"scale_emb": 13'))   # same length: only the hash tells
    assert len(cfg.read_text()) == len(text)
    with pytest.raises(BundleError, match="config.json does not match its sha256"):
        revalidate_bundle(bundle, console=quiet())
    (bundle / TEXT_EMBEDDINGS).unlink()
    with pytest.raises(BundleError, match="openvino_text_embeddings_model.xml is missing"):
        revalidate_bundle(bundle, console=quiet())


# ------------------------------------------------------------------------------------------ the step


def test_validate_step_writes_report_and_raises(tiny_checkpoint, tiny_irs_fp32, broken_irs, tmp_path, monkeypatch):
    import ovexport.steps  # noqa: F401  (registers the steps)
    from ovexport.engine.step import StepContext, get_step
    from ovexport.recipe.schema import Recipe
    from ovexport.validators import run_checks

    # the checks themselves are tested above: the step's wiring only needs the cheap one
    monkeypatch.setattr(run_checks, "CHECKS", {k: v for k, v in run_checks.CHECKS.items() if k == "text_embeddings"})
    step = get_step("validate")
    assert step.consumes == ("checkpoint", "compressed_ir") and step.produces == "validation"
    recipe = Recipe.model_validate({"name": "t", "version": "0.1.0", "source": "synthetic://tiny?seed=0"})
    assert step.params(recipe) == recipe.validation.model_dump(mode="json")
    assert {"code", "openvino", "torch"} <= set(step.tool_versions())

    def ctx(irs: Path, out: str) -> StepContext:
        (tmp_path / out).mkdir()
        return StepContext(recipe=recipe, inputs={"checkpoint": tiny_checkpoint, "compressed_ir": irs},
                           out=tmp_path / out, work=tmp_path, console=quiet())

    bad = ctx(broken_irs, "bad")
    with pytest.raises(ValidationFailed, match="text_embeddings.max_abs_diff"):
        step.run(bad)
    assert json.loads((bad.out / VALIDATION).read_text())["passed"] is False   # written before raising
    assert (tmp_path / "validation.failed.json").is_file()

    good = ctx(tiny_irs_fp32, "good")
    metrics = step.run(good)
    assert metrics["status"] == "passed" and metrics["text_embeddings.max_abs_diff"] == 0.0
    assert json.loads((good.out / VALIDATION).read_text())["passed"] is True
    assert not (tmp_path / "validation.failed.json").exists()
