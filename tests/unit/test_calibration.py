"""Calibration sources: builtin (generated), local directory, hf-dataset (offline: saved datasets, mocks)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ovexport.calibration import CalibrationSample, load_samples, recipe_samples
from ovexport.calibration.builtin import BUILTIN_SIZE, builtin_samples
from ovexport.calibration.local import local_samples, write_local_set
from ovexport.errors import InputError
from ovexport.recipe.schema import Recipe

pytestmark = pytest.mark.unit


def _pixels(im: Image.Image) -> np.ndarray:
    return np.asarray(im)


# ------------------------------------------------------------------------------------------- builtin


def test_builtin_is_deterministic_and_small():
    a, b = builtin_samples(), builtin_samples()
    assert len(a) == BUILTIN_SIZE and 8 <= BUILTIN_SIZE <= 16
    for x, y in zip(a, b):
        assert x.question == y.question
        assert x.image.size == y.image.size
        assert np.array_equal(_pixels(x.image), _pixels(y.image))
    other_seed = builtin_samples(seed=1)
    assert any(not np.array_equal(_pixels(x.image), _pixels(y.image)) for x, y in zip(a, other_seed))


def test_builtin_variety():
    samples = builtin_samples()
    assert all(s.image.mode == "RGB" and s.question.endswith(("?", ".")) for s in samples)
    sizes = {s.image.size for s in samples}
    # squares, small (upscaled) and large / non-square images (sliced by MiniCPM-V-2's preprocessing)
    assert (440, 440) in sizes                  # under 448x448: MiniCPM-V-2 takes it whole
    assert any(w * h > 448 * 448 * 1.5 for w, h in sizes) and any(w * h < 448 * 448 for w, h in sizes)
    assert len({s.question for s in samples}) >= 6
    # not flat images: every image has several colours
    for s in samples:
        small = np.asarray(s.image.resize((48, 48))).reshape(-1, 3)
        assert len(np.unique(small, axis=0)) > 3, s.origin


def test_builtin_num_samples():
    assert len(load_samples("builtin", 3)) == 3
    logs = []
    assert len(load_samples("builtin", 100, log=logs.append)) == BUILTIN_SIZE
    assert "12 samples" in logs[0] and "100" in logs[0]


# --------------------------------------------------------------------------------------------- local


def _local_set(tmp_path: Path, n: int = 3) -> Path:
    d = tmp_path / "calib"
    write_local_set(builtin_samples(n), d, fmt="png")
    return d


def test_local_roundtrip(tmp_path):
    d = _local_set(tmp_path)
    samples = local_samples(d)
    assert [s.question for s in samples] == [s.question for s in builtin_samples(3)]
    assert np.array_equal(_pixels(samples[0].image), _pixels(builtin_samples(1)[0].image))
    assert len(local_samples(d, 2)) == 2


def test_local_via_recipe_relative_to_recipe_dir(tmp_path):
    _local_set(tmp_path)
    recipe = Recipe.model_validate(
        {"name": "x", "version": "0.1.0", "source": "synthetic://tiny", "calibration": {"source": "calib",
                                                                                      "num_samples": 2}},
        context={"base_dir": tmp_path})
    samples = recipe_samples(recipe)
    assert len(samples) == 2 and all(isinstance(s, CalibrationSample) for s in samples)


@pytest.mark.parametrize("content, message", [
    ('{"image": "0000.png", "question": "q"}\n{"image": "0001.png"\n', "questions.jsonl:2: not valid JSON"),
    ('{"image": "0000.png"}\n', "questions.jsonl:1: missing key 'question'"),
    ('["0000.png", "q"]\n', "questions.jsonl:1: a line must be a JSON object"),
    ('{"image": "nope.png", "question": "q"}\n', "questions.jsonl:1: image 'nope.png' not found"),
    ('{"image": "0000.png", "question": ""}\n', "'question' must be non-empty text"),
    ("\n# only a comment\n", "has no entries"),
])
def test_local_errors_are_one_line(tmp_path, content, message):
    d = _local_set(tmp_path, 1)
    (d / "questions.jsonl").write_text(content)
    with pytest.raises(InputError) as ei:
        local_samples(d)
    assert message in str(ei.value)
    assert "\n" not in str(ei.value) and ei.value.fix


def test_local_missing_dir_and_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        local_samples(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no questions.jsonl"):
        local_samples(tmp_path / "empty")


def test_local_unreadable_image(tmp_path):
    d = _local_set(tmp_path, 1)
    (d / "0000.png").write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read image '0000.png'"):
        local_samples(d)


# ---------------------------------------------------------------------------------------- hf-dataset


def _save_dataset(path: Path, columns: dict | None = None, dict_split: str | None = None) -> Path:
    import datasets

    samples = builtin_samples(3)
    cols = columns if columns is not None else {"image": [s.image for s in samples],
                                                "question": [s.question for s in samples],
                                                "answer": ["a", "b", "c"]}
    features = None
    if "image" in cols and isinstance(cols["image"][0], Image.Image):
        features = datasets.Features({k: datasets.Image() if k == "image" else datasets.Value("string")
                                      for k in cols})
    ds = datasets.Dataset.from_dict(cols, features=features)
    if dict_split:
        ds = datasets.DatasetDict({dict_split: ds})
    ds.save_to_disk(str(path))
    return path


def test_hf_saved_dataset_absolute_path(tmp_path):
    from ovexport.calibration.hf import hf_samples

    d = _save_dataset(tmp_path / "ds")
    samples = hf_samples(str(d), "train", 2)
    assert [s.question for s in samples] == [s.question for s in builtin_samples(2)]
    assert samples[0].image.mode == "RGB" and samples[0].image.size == builtin_samples(1)[0].image.size


def test_hf_saved_dataset_dict_through_the_recipe_source(tmp_path):
    _save_dataset(tmp_path / "myset", dict_split="validation")
    samples = load_samples("hf-dataset:myset:validation", 5, base_dir=tmp_path)
    assert len(samples) == 3
    with pytest.raises(InputError, match=r"no split 'train' \(splits: validation\)"):
        load_samples("hf-dataset:myset", 5, base_dir=tmp_path)


def test_hf_columns_error_names_the_columns(tmp_path):
    _save_dataset(tmp_path / "bad", columns={"photo_id": ["1", "2"], "label": ["x", "y"]})
    with pytest.raises(InputError) as ei:
        load_samples("hf-dataset:bad", 2, base_dir=tmp_path)
    msg = str(ei.value)
    assert "no image column" in msg and "no question column" in msg and "columns found: photo_id, label" in msg


def test_hf_alternative_column_names(tmp_path):
    import datasets

    samples = builtin_samples(2)
    ds = datasets.Dataset.from_dict({"img": [s.image for s in samples], "instruction": [s.question for s in samples]},
                                    features=datasets.Features({"img": datasets.Image(),
                                                                "instruction": datasets.Value("string")}))
    ds.save_to_disk(str(tmp_path / "alt"))
    got = load_samples("hf-dataset:alt", 2, base_dir=tmp_path)
    assert [s.question for s in got] == [s.question for s in samples]


def test_hf_hub_unreachable_message(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'lmms-lab/COCO-Caption' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(InputError) as ei:
        load_samples("hf-dataset:lmms-lab/COCO-Caption:val", 4)
    msg = str(ei.value)
    assert "unreachable" in msg and "builtin" in msg and "local directory" in msg and "\n" not in msg


def test_hf_hub_streams_and_takes_num_samples(monkeypatch):
    """From the Hub, the dataset is streamed (only the rows used are fetched) and cut at num_samples."""
    import datasets

    samples = builtin_samples(4)
    rows = [{"image": s.image, "question": s.question} for s in samples]
    calls = {}

    class FakeStream:
        features = None

        def __iter__(self):
            calls["iterated"] = calls.get("iterated", 0) + 1
            yield from rows

    def fake_load(name, split=None, streaming=False, **kw):
        calls.update(name=name, split=split, streaming=streaming)
        return FakeStream()

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    got = load_samples("hf-dataset:someone/vqa:val", 3)
    assert calls == {"name": "someone/vqa", "split": "val", "streaming": True, "iterated": 1}
    assert [s.question for s in got] == [s.question for s in samples[:3]]


# ------------------------------------------------------------------------------- decode-step planning


def test_plan_decode_steps(monkeypatch):
    from ovexport.calibration import model_inputs
    from ovexport.recipe.schema import PartCompression

    monkeypatch.setattr(model_inputs, "reset_state_key", lambda: "nncf_reset_state")
    awq = PartCompression(mode="int4_sym", awq=True)
    gptq = PartCompression(mode="int4_sym", gptq=True)
    plan = model_inputs.plan_decode_steps
    assert plan(awq, 12, 128) == model_inputs.MAX_DECODE_STEPS       # 12 x 4 = 48 <= 128
    assert plan(awq, 32, 128) == 3 and plan(awq, 32, 64) == 1 and plan(awq, 32, 32) == 0
    assert plan(gptq, 4, 128) == 0                                      # GPTQ: prefill only
    assert plan(awq, 4, 128, requested=0) == 0
    monkeypatch.setattr(model_inputs, "reset_state_key", lambda: None)  # NNCF without the reset key
    assert plan(awq, 4, 128) == 0


# ------------------------------------------------------------------------------------------ command


def test_calibration_set_command_writes_a_set_a_recipe_can_read(tmp_path):
    from click.testing import CliRunner

    from ovexport.cli import cli

    out = tmp_path / "set"
    r = CliRunner().invoke(cli, ["calibration-set", str(out), "-n", "3"])
    assert r.exit_code == 0, r.output
    assert "wrote 3 samples" in r.stdout
    rows = [json.loads(line) for line in (out / "questions.jsonl").read_text().splitlines()]
    assert [row["question"] for row in rows] == [s.question for s in builtin_samples(3)]
    assert len(local_samples(out)) == 3
    again = CliRunner().invoke(cli, ["calibration-set", str(out)])
    assert again.exit_code != 0 and "not empty" in again.stderr and "Traceback" not in again.output
