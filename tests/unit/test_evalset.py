"""Eval sets: a local folder, a checkpoint's held-out set, and a `datasets` dataset saved locally (streamed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ovexport.errors import InputError
from ovexport.evaluation import evalset as es

pytestmark = pytest.mark.unit


def _img(seed: int, size=(40, 30)) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def _items(n=3):
    return [es.EvalItem(id=str(i), question=f"q{i}?", image=_img(i), answer=str(i)) for i in range(n)]


def test_folder_round_trip_and_digest(tmp_path):
    es.write_folder(_items(), tmp_path / "set")
    s = es.load_folder(tmp_path / "set")
    assert [it.question for it in s.items] == ["q0?", "q1?", "q2?"] and s.has_answers
    assert s.items[1].image.size == (40, 30)
    assert s.digest == es.load_folder(tmp_path / "set").digest
    assert es.load_folder(tmp_path / "set", limit=2).digest != s.digest
    _img(99).save(tmp_path / "set" / "images" / "00001.png")      # same questions, another image
    assert es.load_folder(tmp_path / "set").digest != s.digest


def test_folder_without_answers_and_text_only_questions(tmp_path):
    (tmp_path / es.QUESTIONS).write_text(json.dumps({"question": "hi?", "image": None}) + "\n")
    s = es.load_folder(tmp_path)
    assert not s.has_answers and s.items[0].image is None and s.items[0].id == "1"


@pytest.mark.parametrize("content, where", [("{not json", ":2:"), ('{"image": "a.png"}', ":2:")])
def test_bad_line_is_one_error_with_file_and_line(tmp_path, content, where):
    (tmp_path / es.QUESTIONS).write_text(json.dumps({"question": "ok?"}) + "\n" + content + "\n")
    with pytest.raises(InputError) as e:
        es.load_folder(tmp_path)
    assert where in str(e.value) and e.value.fix


def test_missing_folder_file_and_image_errors(tmp_path):
    with pytest.raises(InputError, match="questions.jsonl"):
        es.load_folder(tmp_path)
    (tmp_path / es.QUESTIONS).write_text(json.dumps({"question": "q", "image": "nope.png"}) + "\n")
    with pytest.raises(InputError, match="unreadable"):
        es.load_folder(tmp_path)
    with pytest.raises(InputError, match="held-out"):
        es.load_heldout(tmp_path / "ckpt")


def test_heldout_is_the_checkpoint_folder(tmp_path):
    es.write_folder(_items(2), tmp_path / "ckpt" / es.HELDOUT_DIR)
    s = es.load_heldout(tmp_path / "ckpt")
    assert s.name == "heldout" and len(s) == 2


def _dataset(n=5):
    import datasets

    feats = datasets.Features({"img": datasets.Image(), "query": datasets.Value("string"),
                               "label": datasets.Sequence(datasets.Value("string"))})
    return datasets.Dataset.from_dict({"img": [_img(i) for i in range(n)], "query": [f"q{i}" for i in range(n)],
                                       "label": [[f"a{i}", "alt"] for i in range(n)]}, features=feats)


def test_dataset_saved_to_disk_with_column_mapping(tmp_path):
    _dataset().save_to_disk(str(tmp_path / "ds"))
    s = es.load_dataset_stream(str(tmp_path / "ds"), split="train", limit=3,
                               columns=es.parse_columns("image=img,question=query,answer=label"))
    assert [it.question for it in s.items] == ["q0", "q1", "q2"]
    assert s.items[2].answer == "a2" and s.items[0].image.size == (40, 30)


def test_dataset_parquet_folder_is_streamed(tmp_path):
    (tmp_path / "pq" / "data").mkdir(parents=True)
    _dataset(4).to_parquet(str(tmp_path / "pq" / "data" / "validation-00000-of-00001.parquet"))
    s = es.load_dataset_stream(str(tmp_path / "pq"), split="validation", limit=10,
                               columns={"image": "img", "question": "query", "answer": "label"})
    assert len(s) == 4 and s.items[3].question == "q3" and s.items[3].image is not None


def test_dataset_column_errors_name_the_columns(tmp_path):
    _dataset().save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(InputError) as e:
        es.load_dataset_stream(str(tmp_path / "ds"), split="train", limit=2)
    assert "question=question" in str(e.value) and "--columns" in e.value.fix
    with pytest.raises(InputError, match="ROLE=COLUMN"):
        es.parse_columns("picture=img")


def test_generated_set_is_deterministic_and_not_the_calibration_set():
    from ovexport.calibration.builtin import builtin_samples

    a, b = es.load_generated(3), es.load_generated(3)
    assert a.digest == b.digest and len(a) == 3 and not a.has_answers
    calib = builtin_samples(3)
    assert [it.image.tobytes() for it in a.items] != [s.image.tobytes() for s in calib]
