"""Exact-match accuracy of a bundle on a question folder with answers, through the real runtime.

Each question is asked in a fresh conversation (``Pipeline.stream``, greedy). An answer counts when it equals
the ground truth after ``normalise_answer`` (case, Unicode form, inner whitespace and punctuation at either end
do not count: the task accuracy of ``ovexport compare``). Results are grouped overall, per question text and
by whether the image went in whole ("whole") or split into several pieces ("pieces"), as the family's
preprocessing does it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ovexport.errors import InputError

from .evalset import EvalItem, load_folder
from .scoring import normalise_answer

if TYPE_CHECKING:
    from ovexport.runtime.pipeline import Pipeline


@dataclass
class Accuracy:
    groups: dict[str, list[bool]] = field(default_factory=dict)   # "all", each question, "whole"/"pieces"
    seconds: float = 0.0

    def rows(self) -> list[tuple[str, float, int, int]]:
        """(group, accuracy, right, asked) of each group, "all" first."""
        return [(g, sum(v) / len(v), sum(v), len(v)) for g, v in self.groups.items()]

    def to_json(self) -> dict:
        return {"groups": {g: {"accuracy": acc, "right": right, "asked": n} for g, acc, right, n in self.rows()},
                "seconds": round(self.seconds, 3)}


def answered(folder: Path) -> list[EvalItem]:
    """The questions of ``folder`` (``questions.jsonl`` + images) that have an answer; InputError if none has."""
    items = [it for it in load_folder(folder).items if it.answer is not None]
    if not items:
        raise InputError(f"no question of {folder} has an answer", fix='give the lines of questions.jsonl an '
                                                                       '"answer", or use `ovexport compare`')
    return items


Answerer = Callable[[EvalItem, int], tuple[str, bool]]   # (item, max_new_tokens) -> (greedy answer, image split into pieces?)


def ovexport_answers(pipe: "Pipeline") -> Answerer:
    """Greedy answers through ovexport's runtime, a fresh conversation each."""
    from ovexport.runtime.generation import GenerationConfig

    def answer(it: EvalItem, max_new_tokens: int) -> tuple[str, bool]:
        r = pipe.chat(it.question, image=it.image, config=GenerationConfig.greedy(max_new_tokens=max_new_tokens))
        return r.text, r.timings["image_pieces"] > 1
    return answer


def genai_answers(pipe) -> Answerer:
    """Greedy answers through openvino.genai's VLMPipeline (``runtime.genai_runtime.GenaiPipeline``)."""
    def answer(it: EvalItem, max_new_tokens: int) -> tuple[str, bool]:
        r = pipe.generate(it.question, it.image, max_new_tokens=max_new_tokens)
        return r.text, r.timings["image_pieces"] > 1   # genai counts the source image too
    return answer


def exact_match(pipe: "Pipeline | Answerer", items: list[EvalItem], max_new_tokens: int = 8,
                progress: Callable[[int, int], None] | None = None) -> Accuracy:
    """Ask each question (greedy, a fresh conversation each) and compare with its answer. ``pipe``: ovexport's
    ``Pipeline``, or an answerer (``genai_answers``)."""
    answer = pipe if callable(pipe) and not hasattr(pipe, "chat") else ovexport_answers(pipe)
    result = Accuracy(groups={"all": []})
    start = time.perf_counter()
    for i, it in enumerate(items):
        text, split = answer(it, max_new_tokens)
        ok = normalise_answer(text) == normalise_answer(it.answer)
        for g in ("all", it.question, "pieces" if split else "whole"):
            result.groups.setdefault(g, []).append(ok)
        if progress is not None:
            progress(i + 1, len(items))
    result.seconds = time.perf_counter() - start
    return result
