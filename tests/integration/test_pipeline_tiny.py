"""Issue 2 end to end: `ovexport run` on the tiny synthetic recipes, skipping, overrides, parity, errors."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ovexport.bundle.reproducible import recorded_checkpoint
from click.testing import CliRunner

from ovexport.cli import cli

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INT4 = str(REPO / "recipes" / "tiny-minicpmv2-int4.yaml")
FP32 = str(REPO / "recipes" / "tiny-minicpmv2-fp32.yaml")


def ovexport(*args: str, env: dict | None = None):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)
    return result


def rows(output: str) -> dict[str, str]:
    """step -> 'ran' | 'up to date' | 'cached' from the engine's one-line-per-step log."""
    out = {}
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("✓ "):
            out[line.split()[1]] = "ran"
        elif line.startswith("= "):
            out[line.split()[1]] = "up to date"
        elif line.startswith("↺ "):
            out[line.split()[1]] = "cached"
    return out


@pytest.fixture(scope="module")
def int4_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dist")
    r = ovexport("run", INT4, "--set", f"output.root={root}")
    assert r.exit_code == 0, r.output
    assert set(rows(r.output).values()) == {"ran"}, r.output
    return root


def test_run_writes_a_complete_bundle(int4_root):
    bundle = int4_root / "tiny-minicpmv2-int4" / "0.1.0"
    for f in ("openvino_language_model.xml", "openvino_language_model.bin", "openvino_text_embeddings_model.xml",
              "openvino_vision_embeddings_model.xml", "openvino_resampler_model.xml", "config.json", "tokenizer.model",
              "tokenizer_config.json",
              "generation_config.json", "manifest.json", "validation.json"):
        assert (bundle / f).is_file(), f
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["name"] == "tiny-minicpmv2-int4" and m["version"] == "0.1.0" and m["model_family"] == "minicpmv2"
    assert m["source"]["uri"] == "synthetic://tiny?seed=0"
    assert m["recipe"]["compression"]["llm"]["ratio"] == 0.6
    assert {"openvino", "nncf", "torch"} <= set(m["packages"])
    assert set(m["steps"]) == {"download", "convert_text_embeddings", "convert_llm", "make_stateful",
                               "convert_image_encoder", "compress", "validate"}
    # every part gated and within its gates
    assert (m["validation"]["status"], m["validation"]["not_gated"]) == ("passed", [])
    assert m["validation"]["passed"] is True and m["validated"] is True
    assert {c["status"] for c in m["validation"]["checks"].values()} == {"passed"}
    llm = m["compression"]["llm"]["weights"]
    assert llm["int4"]["layers"] > 0 and llm["int8"]["layers"] > 0
    for rel, entry in m["files"].items():
        assert (bundle / rel).stat().st_size == entry["size"]
    # no temporary leftovers anywhere
    assert not [p for p in int4_root.rglob(".tmp-*")]


def test_second_run_skips_every_step_and_override_reruns_from_compress(int4_root):
    again = ovexport("run", INT4, "--set", f"output.root={int4_root}")
    assert again.exit_code == 0, again.output
    assert set(rows(again.output).values()) == {"up to date"}, again.output

    changed = ovexport("run", INT4, "--set", f"output.root={int4_root}", "--set", "compression.llm.ratio=0.8")
    assert changed.exit_code == 0, changed.output
    status = rows(changed.output)
    assert status == {"download": "up to date", "convert_text_embeddings": "up to date", "convert_llm": "up to date",
                      "make_stateful": "up to date", "convert_image_encoder": "up to date",
                      "compress": "ran", "validate": "ran", "package": "ran"}, changed.output
    m = json.loads((int4_root / "tiny-minicpmv2-int4" / "0.1.0" / "manifest.json").read_text())
    assert m["recipe"]["compression"]["llm"]["ratio"] == 0.8


def test_int8_static_image_encoder_bundle_validates_and_chats(tmp_path):
    """The int8-vision variant end to end: quantized by nncf.quantize in the compress step, gated by the
    validators (image encoder, LLM with image features, end to end), recorded in the manifest, and usable."""
    r = ovexport("run", INT4, "--set", f"output.root={tmp_path}", "--set", "compression.image_encoder={mode: int8_static}",
                 "--set", "calibration={source: builtin, num_samples: 2}",
                 # measured on the tiny model: cosine 0.96-0.97 on images, 0.77 on the 14x14 one-patch case (4
                 # calibration images, random weights); the full-size recipe gates at 0.995
                 "--set", "validation.thresholds.image_encoder={max_abs_diff: null, min_cosine: 0.7}",
                 "--set", "validation.thresholds.end_to_end.min_token_agreement=null")
    assert r.exit_code == 0, r.output
    bundle = tmp_path / "tiny-minicpmv2-int4" / "0.1.0"
    m = json.loads((bundle / "manifest.json").read_text())
    enc = m["compression"]["image_encoder"]
    assert enc["policy"]["mode"] == "int8_static"
    assert [enc["irs"][ir]["calibration"]["items"] for ir in enc["files"]] == [4, 4]
    assert enc["weights"]["int8"]["layers"] == 15 and enc["weights"]["int4"]["layers"] == 0
    checks = m["validation"]["checks"]
    # end_to_end set to null above: the bundle says so
    assert (m["validation"]["status"], m["validation"]["not_gated"]) == ("not_gated", ["end_to_end"])
    assert checks["image_encoder"]["passed"] and checks["end_to_end"]["status"] == "not_gated"
    assert 0.7 <= checks["image_encoder"]["metrics"]["min_cosine"] < 0.999   # quantized, and not broken
    from PIL import Image

    img = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(2).random((500, 300, 3)) * 255).astype("uint8")).save(img)
    chat = ovexport("chat", str(bundle), "--image", str(img), "--max-new-tokens", "3", "--greedy", "--json",
                    "What is it?")
    assert chat.exit_code == 0, chat.output
    assert 1 <= len(json.loads(chat.output.strip().splitlines()[-1])["token_ids"]) <= 3


def test_plan_shows_up_to_date_steps(int4_root):
    __import__("ovexport.steps")   # registers the steps
    from ovexport.engine import planner
    from ovexport.recipe.load import load_recipe

    rows_ = planner.plan(load_recipe(INT4, [f"output.root={int4_root}", "compression.llm.ratio=0.8"]))
    assert {r.name: r.status for r in rows_}["convert_llm"] == "up to date"
    rows_ = planner.plan(load_recipe(INT4, [f"output.root={int4_root}", "compression.llm.ratio=0.7"]))
    status = {r.name: r.status for r in rows_}
    assert status["convert_llm"] == "up to date" and status["compress"] == "will run"
    assert all(r.fingerprint for r in rows_ if r.status == "up to date")
    r = ovexport("plan", INT4, "--set", f"output.root={int4_root}")
    assert r.exit_code == 0, r.output
    assert "convert_llm" in r.output


def test_pipeline_of_two_recipes_sharing_a_checkpoint_converts_it_once(int4_root, tmp_path):
    """Issue 8: the run cache. A second recipe that differs only in compression takes download and the
    conversions from the run cache the first one filled (no conversion runs), and builds a valid bundle."""
    from ovexport.bundle.manifest import verify_files

    variant = tmp_path / "variant.yaml"
    variant.write_text(Path(INT4).read_text().replace("name: tiny-minicpmv2-int4", "name: tiny-variant")
                       .replace("    ratio: 0.6", "    ratio: 0.4"))
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"recipes:\n  - {INT4}\n  - variant.yaml\n")
    plan = ovexport("plan", str(variant), "--set", f"output.root={int4_root}")
    assert plan.exit_code == 0 and "cached" in plan.output, plan.output
    r = ovexport("run", str(pipeline), "--set", f"output.root={int4_root}")
    assert r.exit_code == 0, r.output
    second = r.output[r.output.index("tiny-variant"):]
    upstream = ("download", "convert_text_embeddings", "convert_llm", "make_stateful", "convert_image_encoder")
    assert rows(second) == {**{s: "cached" for s in upstream},
                            "compress": "ran", "validate": "ran", "package": "ran"}, r.output
    assert "from run cache: recipe 'tiny-minicpmv2-int4'" in second
    first = rows(r.output[:r.output.index("tiny-variant")])
    assert not [s for s in upstream if first.get(s) == "ran"], r.output

    bundle = int4_root / "tiny-variant" / "0.1.0"
    verify_files(bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    ref = json.loads((int4_root / "tiny-minicpmv2-int4" / "0.1.0" / "manifest.json").read_text())
    assert m["validation"]["status"] == "passed" and m["recipe"]["compression"]["llm"]["ratio"] == 0.4
    assert m["source"]["checkpoint_digest"] == ref["source"]["checkpoint_digest"]
    assert {s: m["steps"][s] for s in upstream} == {s: ref["steps"][s] for s in upstream}
    assert m["compression"] != ref["compression"]
    # the variant's IRs are hard links of the cache's, not copies
    work_ir = int4_root / ".work" / "tiny-variant" / "llm_stateful_ir" / "openvino_language_model.bin"
    assert work_ir.stat().st_nlink >= 3

    info = ovexport("cache", "info", "--root", str(int4_root), env={"COLUMNS": "200"})
    assert info.exit_code == 0 and "convert_llm" in info.output and "tiny-variant" in info.output, info.output
    again = ovexport("plan", str(variant), "--set", f"output.root={int4_root}", "--set", "name=tiny-other",
                     "--no-run-cache")
    assert again.exit_code == 0 and "cached" not in again.output, again.output


def test_fp32_bundle_matches_pytorch_logits_and_greedy_tokens(tmp_path):
    from ovexport.models.minicpmv2.torch_reference import TorchReference
    from ovexport.runtime.pipeline import Pipeline
    from PIL import Image

    r = ovexport("run", FP32, "--set", f"output.root={tmp_path}")
    assert r.exit_code == 0, r.output
    bundle = tmp_path / "tiny-minicpmv2-fp32" / "0.1.0"
    ckpt = recorded_checkpoint(bundle)
    pipe = Pipeline.load(bundle, ov_config={"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"})
    ref = TorchReference(ckpt)
    image = Image.fromarray((np.random.default_rng(0).random((600, 900, 3)) * 255).astype("uint8"))
    msgs = [{"role": "user", "content": "What is unusual on this image?"}]

    prepared = ref.prepare(msgs, image)
    assert prepared.grid is not None                        # a sliced image: source + 2 slices
    ours = pipe.prefill_embeddings(pipe.adapter.prepare(msgs, image))
    theirs = ref.prefill_embeddings(prepared).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-4)

    t = ours.shape[1]
    pipe.models.reset()
    logits = pipe.models.lm_step(ours, np.ones((1, t), np.int64), np.arange(t)[None], np.zeros(1, np.int32)).copy()
    tokens, step_logits = ref.greedy(prepared, 12)
    np.testing.assert_allclose(logits[0], step_logits[0], atol=1e-3)

    result = pipe.chat(msgs, image, __import__("ovexport.runtime.generation", fromlist=["x"]).GenerationConfig(
        max_new_tokens=12))
    assert result.token_ids == tokens
    assert result.prompt_token_ids == [int(i) for i in prepared.input_ids]


def test_chat_json_on_the_bundle(int4_root, tmp_path):
    from PIL import Image

    img = tmp_path / "photo.jpg"
    Image.fromarray((np.random.default_rng(1).random((300, 500, 3)) * 255).astype("uint8")).save(img)
    bundle = int4_root / "tiny-minicpmv2-int4" / "0.1.0"
    r = ovexport("chat", str(bundle), "--image", str(img), "--max-new-tokens", "5", "--greedy", "--json",
                 "What is unusual on this image?")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert set(out) == {"prompt_token_ids", "token_ids", "text"}
    assert 1 <= len(out["token_ids"]) <= 5 and out["prompt_token_ids"][0] == 1


# ---------------------------------------------------------------------------------------------- errors


def test_recipe_typo_is_reported_with_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(INT4).read_text().replace("  weight_dtype: fp32", "  weight_dtyp: fp32"))
    r = ovexport("run", str(bad))
    assert r.exit_code == 2
    line = next(i for i, l in enumerate(bad.read_text().splitlines(), 1) if "weight_dtyp:" in l)
    assert f"bad.yaml:{line}: export.weight_dtyp" in r.output
    assert "Traceback" not in r.output


def _local_recipe(tmp_path: Path, ckpt: Path) -> Path:
    text = Path(INT4).read_text().replace("source: synthetic://tiny?seed=0", f"source: {ckpt}")
    p = tmp_path / "local.yaml"
    p.write_text(text + "\n")
    return p


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> Path:
    from ovexport.models.minicpmv2.synth import write_synthetic_checkpoint
    return write_synthetic_checkpoint(tmp_path_factory.mktemp("ck") / "ckpt", "tiny", 0)


def test_missing_checkpoint_file_is_one_line(tmp_path, tiny_ckpt):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    (ckpt / "tokenizer.model").unlink()
    r = ovexport("run", str(_local_recipe(tmp_path, ckpt)), "--set", f"output.root={tmp_path / 'out'}",
                 "--until", "download")
    assert r.exit_code == 2, r.output
    err = [l for l in r.output.splitlines() if l.startswith("error:")]
    assert len(err) == 1 and "tokenizer.model" in err[0] and "fix:" in err[0]
    assert not (tmp_path / "out" / ".work" / "tiny-minicpmv2-int4" / "checkpoint").exists()


def test_wrong_tensor_shape_fails_the_conversion_in_one_line(tmp_path, tiny_ckpt):
    from safetensors.torch import load_file, save_file
    import torch

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny_ckpt, ckpt)
    shard = ckpt / json.loads((ckpt / "model.safetensors.index.json").read_text())["weight_map"]["llm.lm_head.weight"]
    sd = load_file(shard)
    sd["llm.lm_head.weight"] = torch.zeros(10, 128)
    save_file(sd, shard)
    r = ovexport("run", str(_local_recipe(tmp_path, ckpt)), "--set", f"output.root={tmp_path / 'out'}",
                 "--until", "convert_llm")
    assert r.exit_code == 2, r.output
    assert "llm.lm_head.weight" in r.output and "(10, 128)" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out" / ".work" / "tiny-minicpmv2-int4" / "llm_ir").exists()


def test_unreadable_image_is_one_line(int4_root, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    r = ovexport("chat", str(int4_root / "tiny-minicpmv2-int4" / "0.1.0"), "--image", str(bad), "hi")
    assert r.exit_code != 0
    assert "broken.jpg" in r.output and "Traceback" not in r.output


REVISION = "187851962daa9b63072d40ec802f597b71bff532"


def _hf_recipe(tmp_path: Path) -> Path:
    p = tmp_path / "hf.yaml"
    p.write_text(Path(INT4).read_text().replace("source: synthetic://tiny?seed=0",
                                                f"source: hf://openbmb/MiniCPM-V-2@{REVISION}"))
    return p


def test_hub_unreachable_is_one_line(tmp_path):
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "empty-cache")}
    r = ovexport("run", str(_hf_recipe(tmp_path)), "--set", f"output.root={tmp_path / 'out'}", "--until", "download",
                 env=env)
    assert r.exit_code == 2, r.output
    assert "cannot reach the Hugging Face Hub" in r.output and "HF_HUB_OFFLINE" in r.output


def test_download_from_a_hub_cache_folder(tmp_path, tiny_ckpt):
    """The real download path (huggingface_hub.snapshot_download) against a folder laid out like the Hub cache."""
    cache = tmp_path / "hub"
    repo = cache / "models--openbmb--MiniCPM-V-2"
    snap = repo / "snapshots" / REVISION
    shutil.copytree(tiny_ckpt, snap)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(REVISION)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    r = ovexport("run", str(_hf_recipe(tmp_path)), "--set", f"output.root={tmp_path / 'out'}", "--until", "download",
                 env=env)
    assert r.exit_code == 0, r.output
    ckpt = tmp_path / "out" / ".work" / "tiny-minicpmv2-int4" / "checkpoint"
    assert (ckpt / "config.json").resolve() == (snap / "config.json").resolve()
    assert (ckpt / "tokenizer.model").is_file()
