"""A second model family, registered only here (tests/toy_family), goes through plan, run, validate and package
with nothing of it outside its own package: what a new family needs is the ``ModelFamily`` protocol."""
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
    for f in ("config.json", "generation_config.json", "openvino_language_model.xml", "openvino_image_encoder_model.xml",
              "openvino_text_embeddings_model.xml"):
        assert (toy_bundle / f).is_file(), f
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
