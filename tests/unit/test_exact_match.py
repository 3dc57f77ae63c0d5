"""``ovexport eval``'s counting (``ovexport.evaluation.exact_match``) with a stand-in pipeline: which answers
count, the groups, questions without an answer. The command on a real bundle: tests/integration/test_runtime_cli.py."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from ovexport.errors import InputError
from ovexport.evaluation.exact_match import answered, exact_match

pytestmark = pytest.mark.unit


class StandIn:
    """Answers from a table (question, image width) -> text; a wide image is encoded as 3 pieces (sliced)."""

    def __init__(self, said: dict[tuple[str, int], str]):
        self.said = said
        self.configs = []

    def chat(self, question, image, config):
        self.configs.append(config)
        return SimpleNamespace(text=self.said[(question, image.width)],
                               timings={"image_pieces": 3 if image.width > 100 else 1})


def _folder(tmp_path: Path, lines: list[dict]) -> Path:
    (tmp_path / "images").mkdir()
    Image.new("RGB", (64, 64)).save(tmp_path / "images" / "small.png")
    Image.new("RGB", (300, 64)).save(tmp_path / "images" / "wide.png")
    (tmp_path / "questions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return tmp_path


def test_answers_count_up_to_case_spacing_and_end_punctuation_grouped_by_question_and_slicing(tmp_path):
    folder = _folder(tmp_path, [
        {"image": "images/small.png", "question": "Colour?", "answer": "  Dark  RED. "},   # said "dark red"
        {"image": "images/wide.png", "question": "Colour?", "answer": "blue"},             # said "green"
        {"image": "images/wide.png", "question": "Shape?", "answer": "a circle"},          # said "a circle"
        {"image": "images/small.png", "question": "Unanswered?"},
    ])
    pipe = StandIn({("Colour?", 64): "dark red", ("Colour?", 300): "green", ("Shape?", 300): "a circle"})
    done = []
    acc = exact_match(pipe, answered(folder), max_new_tokens=5, progress=lambda i, n: done.append((i, n)))
    assert {g: (right, n) for g, _, right, n in acc.rows()} == {
        "all": (2, 3), "Colour?": (1, 2), "Shape?": (1, 1), "whole": (1, 1), "pieces": (1, 2)}
    assert acc.rows()[0][0] == "all" and acc.to_json()["groups"]["all"]["accuracy"] == pytest.approx(2 / 3)
    assert done == [(1, 3), (2, 3), (3, 3)]
    assert {(c.max_new_tokens, c.do_sample, c.num_beams) for c in pipe.configs} == {(5, False, 1)}  # greedy


def test_a_folder_without_answers_is_a_one_line_error(tmp_path):
    folder = _folder(tmp_path, [{"image": "images/small.png", "question": "What?"}])
    with pytest.raises(InputError, match="no question of .* has an answer"):
        answered(folder)
