"""A generated visual question-answering task: what the trained test fixtures (``ovexport.fixtures``) learn and
are scored on. Model-agnostic: images, questions and answers only.

Scenes on calm backgrounds (flat grey, two-tone gradient, faint noise; ``drawing``), at small sizes (area <=
112**2, which an image encoder working on 112-pixel tiles takes whole) and at large ones (2x1 .. 3x2 such tiles).
What is asked about is drawn large, so a tiny vision tower (14-pixel patches, 112-pixel tiles) sees it clearly:
one shape of 35-45 % of the image's short side inside one quadrant, counted shapes of ~20 % each, words in bold
letters ~half the image high. Questions and short answers:

- colour:   "What color is the shape?"         -> red | green | blue | yellow | purple | orange
- shape:    "What shape is it?"                -> circle | square | triangle | star
- position: "Where is the shape?"              -> top left | top right | bottom left | bottom right
- count:    "How many shapes are there?"       -> 1 .. 5
- word:     "What word is written?"            -> one of ``WORDS``

A ``Scene`` is an image with every question it answers (a one-shape scene answers colour, shape and position,
so training encodes its image once for three questions); a held-out ``Sample`` is one question on one scene.
Everything is drawn from its own ``random.Random``, so a stream is deterministic for a seed. Every scene has a
``key`` (the full description of its image). Three streams per seed, from three generators: training scenes
(``training_stream``), validation questions (``validation_samples``: what training settings are chosen on) and
held-out questions (``heldout_samples``: what accuracy is reported on, never used to choose). The validation stream
skips held-out keys and the training stream skips the keys of both (``reserved_keys``), so no image is in two.
"""
from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .drawing import SHAPES, calm_background, draw_shape, draw_word, word_box

__all__ = ["Sample", "Scene", "SCENES", "ANSWERS", "KIND_OF", "scene", "COLORS", "SHAPES", "POSITIONS", "WORDS", "QUESTIONS", "SMALL_SIZES", "LARGE_SIZES",
           "TASK_WORDS", "sample", "training_stream", "heldout_samples", "validation_samples",
           "VALIDATION_QUESTIONS", "reserved_keys", "write_heldout", "read_heldout",
           "PARTS", "PART_LABELS", "scene_parts"]

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30), "green": (30, 165, 50), "blue": (35, 70, 225),
    "yellow": (240, 215, 25), "purple": (135, 45, 185), "orange": (250, 135, 20),
}
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
# no two words differ by one letter only (cat/car did): a tiny vision tower tells them apart by their outline
WORDS = ("cat", "dog", "sun", "key", "tree", "book", "fish", "milk")
MAX_COUNT = 5
QUESTIONS = {
    "color": "What color is the shape?",
    "shape": "What shape is it?",
    "position": "Where is the shape?",
    "count": "How many shapes are there?",
    "word": "What word is written?",
}
KINDS = tuple(QUESTIONS)
KIND_OF = {question: kind for kind, question in QUESTIONS.items()}
ANSWERS: dict[str, tuple[str, ...]] = {
    "color": tuple(COLORS), "shape": SHAPES, "position": POSITIONS,
    "count": tuple(str(n) for n in range(1, MAX_COUNT + 1)), "word": WORDS,
}
# what each scene answers: one scene of one shape answers three questions, so the vision pass is shared
SCENES = {"one": ("color", "shape", "position"), "count": ("count",), "word": ("word",)}
# the scene a held-out question of a kind is asked on (the first that answers it)
SCENE_OF = {kind: next(name for name, kinds in SCENES.items() if kind in kinds) for kind in KINDS}
# (width, height): small ones fit one 112-pixel tile (area <= 112**2), large ones 2x1 .. 3x2 tiles
SMALL_SIZES = ((112, 112), (98, 112), (112, 84), (84, 84), (70, 98), (112, 70), (96, 96))
LARGE_SIZES = ((224, 224), (224, 112), (112, 224), (280, 168), (196, 196), (252, 140))
# words the tokenizer should hold as whole pieces (answers and questions)
TASK_WORDS = tuple(sorted({*COLORS, *SHAPES, *WORDS, "top", "bottom", "left", "right",
                           *" ".join(QUESTIONS.values()).replace("?", "").split()}))


@dataclass(frozen=True)
class Sample:
    image: Image.Image
    question: str
    answer: str
    key: str          # the scene and question, canonically: equal keys = the same sample

    @property
    def sliced_size(self) -> bool:
        return self.image.size in LARGE_SIZES


# ------------------------------------------------------------------------------------------ part maps
# what covers a pixel: nothing (the background), a shape, a whole word, or a letter of a word
LETTERS = tuple(sorted(set("".join(WORDS))))
PARTS = ("background", *SHAPES, *WORDS, *LETTERS)
# how a word's pixels are labelled in a part map: by the whole word, or by the letter that inks them
PART_LABELS = ("words", "letters")


def scene_parts(scene_key: str, labels: str = "letters") -> np.ndarray:
    """[H, W] uint8 map of ``PARTS`` indices of the scene whose ``key`` is given: each shape drawn again, and a
    word's pixels labelled (``labels``) by the word, or by each letter: what the word's first i+1 letters cover beyond
    its first i. A training aid (dense per-patch targets for the vision tower); drawn from the key, so the scene's
    image and the random streams are untouched."""
    if labels not in PART_LABELS:
        raise ValueError(f"unknown part labels {labels!r}")
    (w, h), _bg, drawn = json.loads(scene_key)
    img = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(img)
    if drawn[0] == "one":
        _, shape, _color, _q, cx, cy, r = drawn
        draw_shape(d, shape, cx, cy, r, PARTS.index(shape))
    elif drawn[0] == "big":
        _, shape, _color, cx, cy, r = drawn
        draw_shape(d, shape, cx, cy, r, PARTS.index(shape))
    elif drawn[0] == "many":
        _, shape, _color, centres, r = drawn
        for cx, cy in centres:
            draw_shape(d, shape, cx, cy, r, PARTS.index(shape))
    elif drawn[0] == "word":
        _, word, fsize, x, y = drawn
        if labels == "words":
            draw_word(d, (x, y), word, fsize, 255)
            return np.where(np.asarray(img) > 127, PARTS.index(word), 0).astype(np.uint8)
        before = np.zeros((h, w), dtype=bool)
        parts = np.zeros((h, w), dtype=np.uint8)
        for i, letter in enumerate(word):
            prefix = Image.new("L", (w, h), 0)
            draw_word(ImageDraw.Draw(prefix), (x, y), word[:i + 1], fsize, 255)
            now = np.asarray(prefix) > 127
            parts[now & ~before] = PARTS.index(letter)
            before |= now
        return parts
    else:
        raise ValueError(f"unknown scene {drawn[0]!r}")
    return np.asarray(img, dtype=np.uint8).copy()


# ------------------------------------------------------------------------------------------ scenes
def _one_shape(rng: random.Random, d: ImageDraw.ImageDraw, w: int, h: int) -> tuple[dict[str, str], list]:
    """One shape inside one quadrant, as large as fits well there (35-45 % of the short side): it answers the
    colour, shape and position questions."""
    m = min(w, h)
    shape, color = rng.choice(SHAPES), rng.choice(tuple(COLORS))
    q = rng.randrange(4)
    r = m * rng.uniform(0.175, 0.225)
    cx = (w / 2) * (q % 2) + rng.uniform(min(r + 0.02 * w, w / 4), max(w / 2 - r - 0.01 * w, w / 4))
    cy = (h / 2) * (q // 2) + rng.uniform(min(r + 0.02 * h, h / 4), max(h / 2 - r - 0.01 * h, h / 4))
    draw_shape(d, shape, cx, cy, r, COLORS[color])
    answers = {"color": color, "shape": shape, "position": POSITIONS[q]}
    return answers, ["one", shape, color, q, round(cx, 3), round(cy, 3), round(r, 3)]


def _big_shape(rng: random.Random, d: ImageDraw.ImageDraw, w: int, h: int) -> tuple[dict[str, str], list]:
    """One shape of 60-80 % of the image's short side, anywhere it fits: it answers the colour and shape
    questions (drawn large, so its outline spans several 14-pixel patches). Not in ``SCENES``: probes only."""
    m = min(w, h)
    shape, color = rng.choice(SHAPES), rng.choice(tuple(COLORS))
    r = m * rng.uniform(0.3, 0.4)
    e = 1.15 * r + 1
    cx, cy = rng.uniform(e, max(e, w - e)), rng.uniform(e, max(e, h - e))
    draw_shape(d, shape, cx, cy, r, COLORS[color])
    return {"color": color, "shape": shape}, ["big", shape, color, round(cx, 3), round(cy, 3), round(r, 3)]


def _counted_shapes(rng: random.Random, d: ImageDraw.ImageDraw, w: int, h: int) -> tuple[dict[str, str], list]:
    """1 .. MAX_COUNT equal shapes of ~20 % of the short side each, kept apart."""
    m = min(w, h)
    n = rng.randint(1, MAX_COUNT)
    shape, color = rng.choice(SHAPES), rng.choice(tuple(COLORS))
    r = m * rng.uniform(0.1, 0.12)
    placed: list[tuple[float, float]] = []
    while len(placed) < n:   # rejection sampling: shapes apart by at least 2.5 r; start over when stuck
        for _ in range(200):
            cx, cy = rng.uniform(1.2 * r, w - 1.2 * r), rng.uniform(1.2 * r, h - 1.2 * r)
            if all((cx - x) ** 2 + (cy - y) ** 2 > (2.5 * r) ** 2 for x, y in placed):
                placed.append((cx, cy))
                break
        else:
            placed = []
    for cx, cy in placed:
        draw_shape(d, shape, cx, cy, r, COLORS[color])
    return {"count": str(n)}, ["many", shape, color, [(round(x, 3), round(y, 3)) for x, y in placed], round(r, 3)]


def _printed_word(rng: random.Random, d: ImageDraw.ImageDraw, w: int, h: int, bg: list) -> tuple[dict[str, str], list]:
    """One word in bold letters, 40-55 % of the image high, shrunk until it fits 90 % of the width."""
    word = rng.choice(WORDS)
    fsize = max(10, int(h * rng.uniform(0.4, 0.55)))
    while True:
        left, top, right, bottom = word_box(d, (0, 0), word, fsize)
        if right - left <= 0.9 * w or fsize <= 10:
            break
        fsize -= 2
    tw, th = right - left, bottom - top
    x = rng.uniform(0.04 * w, max(0.04 * w, w - tw - 0.04 * w)) - left
    y = rng.uniform(0.04 * h, max(0.04 * h, h - th - 0.04 * h)) - top
    ink = (15, 15, 15) if bg[1] >= 128 else (245, 245, 245)   # contrast with the background
    draw_word(d, (x, y), word, fsize, ink)
    return {"word": word}, ["word", word, fsize, round(x, 3), round(y, 3)]


@dataclass(frozen=True)
class Scene:
    """An image and every question it answers: (question, answer) pairs in ``KINDS`` order."""
    image: Image.Image
    qa: tuple[tuple[str, str], ...]
    key: str          # the image, canonically: equal keys = the same image

    @property
    def sliced_size(self) -> bool:
        return self.image.size in LARGE_SIZES


def scene(rng: random.Random, scene_kind: str | None = None, large: bool | None = None) -> Scene:
    """One scene of ``scene_kind`` (a key of ``SCENES``; drawn from ``rng`` when None) at a large size (``large``: one a model may split into pieces)
    or a small one (drawn from ``rng`` when None)."""
    scene_kind = scene_kind or rng.choice(tuple(SCENES))
    if large is None:
        large = rng.random() < 0.5
    size = rng.choice(LARGE_SIZES if large else SMALL_SIZES)
    w, h = size
    img, bg = calm_background(rng, size)
    d = ImageDraw.Draw(img)
    if scene_kind == "one":
        answers, drawn = _one_shape(rng, d, w, h)
    elif scene_kind == "big":
        answers, drawn = _big_shape(rng, d, w, h)
    elif scene_kind == "count":
        answers, drawn = _counted_shapes(rng, d, w, h)
    elif scene_kind == "word":
        answers, drawn = _printed_word(rng, d, w, h, bg)
    else:
        raise ValueError(f"unknown scene kind {scene_kind!r}")
    key = json.dumps([list(size), bg, drawn], separators=(",", ":"))
    return Scene(image=img, qa=tuple((QUESTIONS[k], answers[k]) for k in KINDS if k in answers), key=key)


def sample(rng: random.Random, kind: str | None = None, large: bool | None = None) -> Sample:
    """One question (``kind``, drawn from ``rng`` when None) on a new scene; its key is the scene's."""
    kind = kind or rng.choice(KINDS)
    if kind not in QUESTIONS:
        raise ValueError(f"unknown question kind {kind!r}")
    sc = scene(rng, SCENE_OF[kind], large)
    return Sample(image=sc.image, question=QUESTIONS[kind], answer=dict(sc.qa)[QUESTIONS[kind]], key=sc.key)


def heldout_samples(seed: int, n: int = 150) -> list[Sample]:
    """``n`` held-out samples: every kind, half small and half large images, in turn."""
    rng = random.Random(f"ovexport-heldout-{seed}")
    return [sample(rng, kind=KINDS[i % len(KINDS)], large=(i // len(KINDS)) % 2 == 1) for i in range(n)]


# validation questions a seed reserves (twice the held-out set: one question is 0.33 points, a kind 60 questions)
VALIDATION_QUESTIONS = 300


def validation_samples(seed: int, n: int = VALIDATION_QUESTIONS) -> list[Sample]:
    """``n`` validation samples, laid out as ``heldout_samples`` (every kind, half large, in turn) from their own
    generator, skipping any held-out image (of the default 150): the set training settings are chosen on."""
    rng = random.Random(f"ovexport-validation-{seed}")
    heldout = {s.key for s in heldout_samples(seed)}
    out: list[Sample] = []
    while len(out) < n:
        i = len(out)
        s = sample(rng, kind=KINDS[i % len(KINDS)], large=(i // len(KINDS)) % 2 == 1)
        if s.key not in heldout:
            out.append(s)
    return out


def reserved_keys(seed: int, heldout: int = 150, validation: int = VALIDATION_QUESTIONS) -> set[str]:
    """The image keys of the seed's held-out and validation sets: what its training stream must skip."""
    return {s.key for s in (*heldout_samples(seed, heldout), *validation_samples(seed, validation))}


def training_stream(seed: int, exclude: set[str] | frozenset[str] = frozenset(),
                    sliced_share: float = 0.5) -> Iterator[Scene]:
    """Endless training scenes for ``seed``, ``sliced_share`` of them at large sizes, questions in random order;
    keys in ``exclude`` (the held-out and validation images, ``reserved_keys``) are skipped."""
    rng = random.Random(f"ovexport-train-{seed}")
    while True:
        sc = scene(rng, large=rng.random() < sliced_share)
        qa = list(sc.qa)
        rng.shuffle(qa)             # every kind is asked first (the runtime's single-turn prompt) as often
        if sc.key not in exclude:
            yield dataclasses.replace(sc, qa=tuple(qa))


def write_heldout(samples: list[Sample], out: Path) -> Path:
    """``out/questions.jsonl`` + ``out/images/NNNN.png`` (the local eval-folder format). Returns the jsonl."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(samples):
        name = f"images/{i:04d}.png"
        s.image.save(out / name, format="PNG", optimize=False)
        lines.append(json.dumps({"id": f"{i:04d}", "image": name, "question": s.question, "answer": s.answer}))
    path = out / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_heldout(folder: Path) -> list[dict]:
    """The records of ``folder/questions.jsonl``, each with ``image`` resolved to an absolute path."""
    folder = Path(folder)
    recs = [json.loads(line) for line in (folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()
            if line.strip()]
    for r in recs:
        r["image_path"] = folder / r["image"]
    return recs
