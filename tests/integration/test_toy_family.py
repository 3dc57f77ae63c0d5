"""A second model family, registered only here (tests/toy_family) and deliberately unlike MiniCPM-V-2 (a fixed-size
image, a vision IR and a projector IR, 3-row M-RoPE-style positions, a ChatML prompt), goes through plan, run,
validate, package, chat, compare and publish --dry-run with nothing of it outside its own package: what a new
family needs is the ``ModelFamily`` protocol."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ovexport.cli import cli

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RECIPE = str(REPO / "tests" / "toy_family" / "toy-int8.yaml")
# the step subprocesses import it too: the registry reads $OVEXPORT_FAMILIES when a family is first asked for
FAMILIES = {"OVEXPORT_FAMILIES": "tests.toy_family.family"}


def ovexport(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env=FAMILIES)


@pytest.fixture(scope="module", autouse=True)
def forget_the_toy_family_afterwards():
    """Later tests see only the built-in families (the toy would accept e.g. a trace size MiniCPM-V-2 rejects)."""
    yield
    from ovexport.models.registry import unregister_family
    unregister_family("toyvlm")


@pytest.fixture(scope="module")
def toy_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy-dist")
    plan = ovexport("plan", RECIPE, "--set", f"output.root={root}")
    assert plan.exit_code == 0, plan.output
    assert all(step in plan.output for step in ("download", "convert_llm", "make_stateful", "compress", "package"))
    r = ovexport("run", RECIPE, "--set", f"output.root={root}")
    assert r.exit_code == 0, r.output
    return root / "toy-int8" / "0.1.0"


def test_toy_family_is_built_validated_and_packaged(toy_bundle):
    m = json.loads((toy_bundle / "manifest.json").read_text())
    assert m["model_family"] == "toyvlm" and m["validated"]
    assert m["compression"]["llm"]["policy"]["mode"] == "int8_asym"
    assert m["compression"]["image_encoder"]["policy"] is None
    checks = m["validation"]["checks"]
    assert set(checks) == {"text_embeddings", "image_encoder", "llm", "end_to_end"}
    assert all(c["passed"] for c in checks.values())
    assert checks["text_embeddings"]["metrics"]["max_abs_diff"] == 0.0      # fp32 lookup: exact
    report = json.loads((toy_bundle / "validation.json").read_text())
    e2e = next(c for c in report["checks"] if c["name"] == "end_to_end")
    assert set(e2e["details"]["cases"]) == {"64x48", "30x90"}                # the toy's own validation cases
    assert all(c["same_prompt"] for c in e2e["details"]["cases"].values())
    irs = {f for f in m["files"] if f.endswith(".xml")}
    assert irs == {"openvino_language_model.xml", "openvino_text_embeddings_model.xml",
                   "openvino_vision_embeddings_model.xml", "openvino_multi_modal_projector_model.xml"}
    assert not (toy_bundle / "openvino_image_encoder_model.xml").exists()
    for f in ("config.json", "generation_config.json"):
        assert (toy_bundle / f).is_file(), f
    enc = next(c for c in report["checks"] if c["name"] == "image_encoder")
    assert set(enc["details"]["cases"]) == {"random", "resized_50x20", "batch3"}
    assert enc["details"]["cases"]["batch3"]["inputs"] == {"pixel_values": [3, 3, 32, 32]}   # no tgt_size
    assert not (toy_bundle / "README.md").exists()        # the toy publishes nothing: no model card


def test_toy_bundle_runs_with_its_generation_config(toy_bundle, monkeypatch):
    from PIL import Image

    from ovexport.models.registry import family_for
    from ovexport.runtime.generation import GenerationConfig
    from ovexport.runtime.pipeline import Pipeline

    monkeypatch.setenv("OVEXPORT_FAMILIES", FAMILIES["OVEXPORT_FAMILIES"])
    assert family_for(toy_bundle).display_name == "Toy VLM"
    pipe = Pipeline.load(toy_bundle, ov_config={"INFERENCE_PRECISION_HINT": "f32"})
    presets = pipe.adapter.generation_presets
    # the checkpoint's generation_config.json (temperature 0.5, top_k 20) over the family's presets
    assert presets.sampling == {"do_sample": True, "top_p": 0.9, "top_k": 20, "temperature": 0.5}
    image = Image.new("RGB", (40, 30), (200, 30, 60))
    a = pipe.chat("Describe this image.", image, GenerationConfig.sampling(presets, seed=3, max_new_tokens=6))
    b = pipe.chat("Describe this image.", image, GenerationConfig.sampling(presets, seed=3, max_new_tokens=6))
    assert a.token_ids == b.token_ids and 1 <= len(a.token_ids) <= 6


def test_toy_llm_takes_three_rows_of_positions(toy_bundle):
    import openvino as ov

    lm = ov.Core().read_model(toy_bundle / "openvino_language_model.xml")
    assert lm.input("position_ids").get_partial_shape().rank.get_length() == 3


def test_toy_positions_and_prompt_are_its_own(toy_bundle, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("OVEXPORT_FAMILIES", FAMILIES["OVEXPORT_FAMILIES"])
    from tests.toy_family.family import FAMILY

    adapter = FAMILY.runtime(toy_bundle)
    prepared = adapter.prepare([{"role": "user", "content": "hi"}], Image.new("RGB", (50, 20)))
    assert prepared.prompt.startswith("<|im_start|>user\n<|vision_start|>")
    pos = adapter.position_ids(prepared)
    assert pos.shape == (3, len(prepared.input_ids))
    # the 4 image tokens share the temporal row and spread over a 2x2 grid; the text after starts past them
    img = slice(7, 11)          # <|im_start|> "user\n" <|vision_start|>, then the 4 image tokens
    assert pos[:, :7].tolist() == [list(range(7))] * 3
    assert pos[0, img].tolist() == [7] * 4 and pos[1, img].tolist() == [7, 7, 8, 8] and pos[2, img].tolist() == [7, 8] * 2
    assert pos[:, 11].tolist() == [9, 9, 9]


def test_toy_chat_cli_answers(toy_bundle, tmp_path):
    from PIL import Image

    image = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 30, 60)).save(image)
    r = ovexport("chat", str(toy_bundle), "What is it?", "--image", str(image), "--greedy", "--max-new-tokens", "5",
                 "--json")
    assert r.exit_code == 0, r.output
    answer = json.loads(r.output.strip().splitlines()[-1])
    assert answer["prompt_token_ids"][:2] == [2, 7 + ord("u")] and 1 <= len(answer["token_ids"]) <= 5


def test_toy_bundle_revalidates(toy_bundle):
    r = ovexport("validate", str(toy_bundle), "--checkpoint", str(_checkpoint(toy_bundle)))
    assert r.exit_code == 0, r.output
    assert "image_encoder" in r.output and "passed" in r.output


def test_toy_compare_and_publish_dry_run(toy_bundle, tmp_path):
    out = tmp_path / "cmp"
    r = ovexport("compare", str(toy_bundle), "--checkpoint", str(_checkpoint(toy_bundle)), "--eval", "generated",
                 "--limit", "3", "--max-new-tokens", "4", "--out", str(out), "--no-reference-cache")
    assert r.exit_code == 0, r.output
    res = json.loads((out / "compare.json").read_text())
    row = res["rows"][0]
    assert row["kl_mean"] >= 0 and row["top1_agreement"] > 0.5
    r = ovexport("publish", str(toy_bundle), "--repo-id", "me/toy-int8", "--dry-run")
    assert r.exit_code == 0, r.output
    assert "openvino_multi_modal_projector_model.bin" in r.output


def _checkpoint(bundle: Path) -> Path:
    """The synthetic checkpoint the bundle was built from (recorded beside the bundle's versions)."""
    recorded = json.loads((bundle.parent.parent / ".work" / "toy-int8" / "bundle-source.json").read_text())
    return Path(recorded["0.1.0"])
