"""The tiny TRAINED MiniCPM-V-2: `ovexport run` on the tiny-trained recipes gives bundles that answer the
held-out questions through the real runtime (slicing, prompt, streaming, greedy), with every gate on."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ovexport.cli import cli

# slow tier: the trained fixture takes ~7.5 min of CPU to train once (440 s measured on 2026-12-05; cached afterwards)
pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
# Held-out accuracy of TrainSettings() (chosen on the validation stream; 2026-12-05, AVX512 EPYC, PyTorch, 150 questions a
# seed, `python benchmarks/trained_heldout.py --seeds 0 1 2`): seed 0 92.0, seed 1 90.7, seed 2 88.7 % (mean 90.5 %);
# seed 0's fp32 and int4 bundles 92.0 % each (`ovexport eval`). The bar is the worst seed less 3 points: numerics differ
# between CPUs (a rebuild of seed 0 of the earlier defaults on an AMX machine answered 1.3 points fewer), and the
# bundles here are of seed 0, which sits 3.3 points above the worst seed. Details:
# docs/investigations/2026-12-05-trained-fixture-settings.md.
WORST_SEED_ACCURACY = 0.887
MARGIN = 0.03
TARGET_ACCURACY = WORST_SEED_ACCURACY - MARGIN      # 0.857: 129 of 150 questions
# Answering from the question alone (the answer prior) scores about 0.2: this floor catches a training or export that
# loses most of what the model learnt even if the target test is edited.
MIN_ACCURACY = 0.45
# VLMPipeline prepares some held-out images otherwise than MiniCPM-V-2 (its slicer's rounding, 2.6's slice layout:
# docs/genai.md), so its answers there may differ from ovexport's; measured on seed 0 (BENCHMARKS.md,
# "openvino.genai VLMPipeline")
# seed 0, default precisions: ovexport 135/150, VLMPipeline 134/150 (`ovexport eval BUNDLE HELDOUT [--runtime genai]`)
GENAI_TOLERANCE = 0.03


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def heldout_accuracy(bundle: Path, heldout: Path) -> tuple[float, list[dict]]:
    """Exact-match share of the held-out questions, asked one by one through ``Pipeline.stream`` (greedy), and the
    records answered wrongly (each with what the bundle said in ``got``)."""
    from ovexport.runtime.generation import GenerationConfig
    from ovexport.runtime.pipeline import Pipeline

    records = heldout_records(heldout)
    pipe = Pipeline.load(bundle)
    wrong = []
    for r in records:
        stream = pipe.stream(r["question"], image=heldout / r["image"], config=GenerationConfig.greedy(max_new_tokens=8))
        text = "".join(stream)
        assert stream.result is not None and stream.result.text == text   # streamed pieces = the answer
        if normalise(text) != normalise(r["answer"]):
            wrong.append({**r, "got": text})
    return 1 - len(wrong) / len(records), wrong


def heldout_records(heldout: Path) -> list[dict]:
    return [json.loads(line) for line in (heldout / "questions.jsonl").read_text().splitlines() if line.strip()]


def per_question(records: list[dict], wrong: list[dict]) -> str:
    """'What color is the shape? 30/30, ...': right answers per question, for a failure message."""
    missed = {r["id"] for r in wrong}
    asked: dict[str, list[bool]] = {}
    for r in records:
        asked.setdefault(r["question"], []).append(r["id"] not in missed)
    return ", ".join(f"{q} {sum(v)}/{len(v)}" for q, v in asked.items())


@pytest.fixture(scope="module")
def dist(tmp_path_factory, trained_checkpoint) -> Path:
    """Both tiny-trained recipes run into one output root; the download step reuses the fixture's cache entry."""
    root = tmp_path_factory.mktemp("trained-dist")
    for recipe in ("tiny-trained-minicpmv2-fp32", "tiny-trained-minicpmv2-int4"):
        r = CliRunner().invoke(cli, ["run", str(REPO / "recipes" / f"{recipe}.yaml"), "--set", f"output.root={root}"],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
    return root


def test_heldout_set_is_written_beside_the_checkpoint_in_the_eval_folder_format(trained_checkpoint):
    from PIL import Image

    from ovexport.models.minicpmv2.slicing import best_grid

    heldout = trained_checkpoint / "heldout"
    records = [json.loads(line) for line in (heldout / "questions.jsonl").read_text().splitlines()]
    assert 100 <= len(records) <= 200
    assert all(set(r) == {"id", "image", "question", "answer"} for r in records)
    assert len({r["id"] for r in records}) == len(records)
    config = json.loads((trained_checkpoint / "config.json").read_text())
    sliced = 0
    for r in records:
        assert r["image"].startswith("images/") and r["image"].endswith(".png")
        with Image.open(heldout / r["image"]) as im:
            sliced += best_grid(im.size, config["max_slice_nums"], config["scale_resolution"]) is not None
    assert 0.3 * len(records) < sliced < 0.7 * len(records), "a mix of sliced and unsliced images"


@pytest.fixture(scope="module")
def accuracy(dist, trained_checkpoint) -> dict[str, tuple[float, list[dict]]]:
    out = {}
    for recipe in ("tiny-trained-minicpmv2-fp32", "tiny-trained-minicpmv2-int4"):
        bundle = dist / recipe / "0.1.0"
        manifest = json.loads((bundle / "manifest.json").read_text())
        assert manifest["source"]["uri"] == "synthetic://tiny-trained?seed=0"
        out[recipe] = heldout_accuracy(bundle, trained_checkpoint / "heldout")
    return out


@pytest.mark.parametrize("recipe", ["tiny-trained-minicpmv2-fp32", "tiny-trained-minicpmv2-int4"])
def test_bundle_answers_the_heldout_questions_better_than_the_answer_prior(accuracy, recipe):
    acc, wrong = accuracy[recipe]
    assert acc >= MIN_ACCURACY, f"{recipe}: {acc:.1%} exact; first misses: {wrong[:5]}"


@pytest.mark.parametrize("recipe", ["tiny-trained-minicpmv2-fp32", "tiny-trained-minicpmv2-int4"])
def test_bundle_answers_the_heldout_questions_as_well_as_the_worst_seed_less_a_margin(accuracy, trained_checkpoint, recipe):
    acc, wrong = accuracy[recipe]
    records = heldout_records(trained_checkpoint / "heldout")
    assert acc >= TARGET_ACCURACY, (f"{recipe}: {acc:.1%} exact ({per_question(records, wrong)}); "
                                    f"first misses: {wrong[:5]}")


@pytest.mark.parametrize("recipe", ["tiny-trained-minicpmv2-fp32", "tiny-trained-minicpmv2-int4"])
def test_end_to_end_gate_is_on_and_passes(dist, recipe):
    validation = json.loads((dist / recipe / "0.1.0" / "validation.json").read_text())
    e2e = _find_check(validation, "end_to_end")
    gates = {g["metric"]: g for g in e2e["gates"]}      # ungated metrics have no gate entry
    assert "token_agreement" in gates, "a trained model gets the end-to-end gate"
    assert gates["token_agreement"]["passed"] is True and e2e["passed"] is True


def _find_check(validation: dict, name: str) -> dict:
    for c in validation.get("checks", []):
        if c.get("name") == name:
            return c
    raise AssertionError(f"no {name} check in validation.json: {sorted(validation)}")


def test_vlmpipeline_answers_the_heldout_questions_as_ovexport(dist, trained_checkpoint):
    """openvino.genai's VLMPipeline on the INT4 bundle, every held-out question: token for token what ovexport's
    runtime answers on what genai feeds the model (``genai_prepare``: its slicer's sizes, its slice layout), and an
    accuracy within GENAI_TOLERANCE of ovexport's own (docs/genai.md; BENCHMARKS.md, "openvino.genai VLMPipeline")."""
    from ovexport.evaluation.exact_match import answered
    from ovexport.evaluation.scoring import normalise_answer
    from ovexport.models.registry import family_for
    from ovexport.runtime.genai_runtime import GenaiPipeline, genai_prepare
    from ovexport.runtime.generation import GenerationConfig, greedy_decode
    from ovexport.runtime.pipeline import Pipeline

    bundle = dist / "tiny-trained-minicpmv2-int4" / "0.1.0"
    f32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}   # bf16 flips a near tie (1 of 150)
    pipe, genai = Pipeline.load(bundle, ov_config=f32), GenaiPipeline(bundle, "CPU", f32)
    family, eos = family_for(bundle), set(pipe.adapter.eos_ids)
    right = {"ovexport": 0, "genai": 0}
    items = answered(trained_checkpoint / "heldout")
    for it in items:
        image = it.image.convert("RGB")
        own = pipe.chat(it.question, image=image, config=GenerationConfig.greedy(max_new_tokens=8))
        theirs = genai.generate(it.question, image, max_new_tokens=8)
        fed = genai_prepare(family, pipe.adapter, [{"role": "user", "content": it.question}], image)
        expect = greedy_decode(pipe.models, pipe.prefill_embeddings(fed), pipe.embed_text, eos, 8)
        assert theirs.token_ids == [t for t in expect if t not in eos], it.id
        right["ovexport"] += normalise_answer(own.text) == normalise_answer(it.answer)
        right["genai"] += normalise_answer(theirs.text) == normalise_answer(it.answer)
    assert abs(right["genai"] - right["ovexport"]) <= GENAI_TOLERANCE * len(items), right
