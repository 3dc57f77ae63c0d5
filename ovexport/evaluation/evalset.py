"""Eval sets: questions about images, with optional ground-truth answers.

Three kinds, one shape (``EvalSet``: a list of ``EvalItem`` and a content digest):

- a **local folder**: ``questions.jsonl`` (one JSON object a line: ``id``, ``image`` (a path relative to the
  folder, or null for a text-only question), ``question``, optional ``answer``) beside the images. The
  trained tiny fixture writes its held-out set in this format as ``<checkpoint>/heldout/``;
- **generated**: questions about images drawn by code (no ground truth), for any checkpoint;
- a **checkpoint's held-out set**: ``heldout`` names ``<checkpoint>/heldout/`` of the recipe's checkpoint;
- a **``datasets`` dataset**: a Hub name or a local folder (parquet/json/imagefolder files, or a folder
  written by ``save_to_disk``), read as a stream (never downloaded whole), with a column mapping
  ``image=<col>,question=<col>,answer=<col>``; ``limit`` items are taken.

The digest hashes the items' content (question, answer, image pixels), so a cached reference is reused only
for the same questions about the same images, wherever they came from.
"""
from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovexport.errors import InputError
from ovexport.synthetic.sources import HELDOUT_DIR, heldout_sources

QUESTIONS = "questions.jsonl"
_SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")  # a ``save_to_disk`` folder
DEFAULT_COLUMNS = {"image": "image", "question": "question", "answer": "answer"}


@dataclass
class EvalItem:
    id: str
    question: str
    image: Any = None             # a PIL image, or None
    answer: str | None = None     # the ground truth, when the set has one


@dataclass
class EvalSet:
    name: str                      # what the user named: a folder, "heldout", "dataset:<name>[<split>]"
    items: list[EvalItem]
    digest: str = ""
    info: dict = field(default_factory=dict)

    @property
    def has_answers(self) -> bool:
        return any(it.answer is not None for it in self.items)

    def __len__(self) -> int:
        return len(self.items)


def _image_bytes(img) -> bytes:
    if img is None:
        return b""
    return img.mode.encode() + repr(img.size).encode() + img.tobytes()


def content_digest(items: Iterable[EvalItem]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps([it.id, it.question, it.answer], ensure_ascii=False).encode())
        h.update(hashlib.sha256(_image_bytes(it.image)).digest())
    return h.hexdigest()


def _finish(name: str, items: list[EvalItem], **info) -> EvalSet:
    if not items:
        raise InputError(f"eval set {name} has no questions", fix="point --eval at a set with at least one question")
    return EvalSet(name=name, items=items, digest=content_digest(items), info=info)


def _open_image(path: Path):
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise InputError(f"image {path} of the eval set is unreadable ({e})",
                         fix="fix or remove that line of questions.jsonl") from None


def load_folder(folder: Path | str, limit: int | None = None) -> EvalSet:
    """A local folder with ``questions.jsonl`` and its images."""
    folder = Path(folder)
    qfile = folder / QUESTIONS
    if not qfile.is_file():
        raise InputError(f"{folder} has no {QUESTIONS}",
                         fix=f"write one JSON object per line to {qfile}: "
                             '{"id": ..., "image": "images/x.png", "question": ..., "answer": ...}')
    items: list[EvalItem] = []
    for n, line in enumerate(qfile.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{qfile}:{n}: not JSON ({e.msg})", fix="write one JSON object per line") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("question"), str):
            raise InputError(f"{qfile}:{n}: no \"question\" string", fix='give each line a "question": "..."')
        img = rec.get("image")
        image = _open_image(folder / img) if img else None
        ans = rec.get("answer")
        items.append(EvalItem(id=str(rec.get("id", n)), question=rec["question"], image=image,
                              answer=None if ans is None else str(ans)))
        if limit is not None and len(items) >= limit:
            break
    return _finish(str(folder), items, kind="folder")


def load_heldout(checkpoint: Path | str, limit: int | None = None) -> EvalSet:
    """The held-out questions a checkpoint carries in ``<checkpoint>/heldout/`` (the synthetic sources that write
    one: ``ovexport.synthetic.sources.heldout_sources``)."""
    folder = Path(checkpoint) / HELDOUT_DIR
    if not (folder / QUESTIONS).is_file():
        with_heldout = " or ".join(f"synthetic://{name}" for name in heldout_sources()) or "none registered"
        raise InputError(f"checkpoint {checkpoint} has no held-out set ({HELDOUT_DIR}/{QUESTIONS})",
                         fix=f"use a checkpoint that carries one ({with_heldout}), or pass --eval FOLDER "
                             "or --dataset NAME")
    es = load_folder(folder, limit)
    es.name = "heldout"
    es.info["kind"] = "heldout"
    return es


GENERATED_SEED = 1   # the builtin calibration set uses seed 0: an eval set drawn from it would be calibration data


def load_generated(limit: int | None = None, seed: int = GENERATED_SEED) -> EvalSet:
    """Questions about images drawn by code (the builtin calibration generator, another seed): no ground truth,
    so only the comparison with the reference is measured. Works for any checkpoint, nothing downloaded."""
    from ovexport.calibration.builtin import BUILTIN_SIZE, builtin_samples

    samples = builtin_samples(limit or BUILTIN_SIZE, seed=seed)
    items = [EvalItem(id=f"generated-{i}", question=s.question, image=s.image) for i, s in enumerate(samples)]
    return _finish("generated", items, kind="generated", seed=seed)


def parse_columns(text: str | None) -> dict[str, str]:
    """``"image=img,question=q,answer=a"`` -> mapping (missing roles keep their default column names)."""
    cols = dict(DEFAULT_COLUMNS)
    if not text:
        return cols
    for part in text.split(","):
        role, sep, col = part.partition("=")
        role, col = role.strip(), col.strip()
        if not sep or role not in DEFAULT_COLUMNS or not col:
            raise InputError(f"--columns part {part!r} is not ROLE=COLUMN with ROLE one of image, question, answer",
                             fix="write e.g. --columns image=img,question=query,answer=label")
        cols[role] = col
    return cols


def _to_image(value: Any):
    """A ``datasets`` image cell (PIL image, {"bytes", "path"} dict, or a path) as an RGB PIL image."""
    from PIL import Image

    if value is None:
        return None
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, Mapping):
        if value.get("bytes"):
            with Image.open(io.BytesIO(value["bytes"])) as im:
                return im.convert("RGB")
        value = value.get("path")
    if isinstance(value, (str, Path)):
        return _open_image(Path(value))
    raise InputError(f"image cell of type {type(value).__name__} is not an image",
                     fix="map --columns image=... to a column of images or image paths")


def _answer(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):          # VQA-style lists of accepted answers: the first one
        return str(value[0]) if value else None
    return str(value)


def load_dataset_stream(name: str, split: str = "validation", limit: int = 100, columns: Mapping[str, str] | None = None,
                        config: str | None = None, revision: str | None = None) -> EvalSet:
    """The first ``limit`` rows of a ``datasets`` dataset, streamed (a local ``save_to_disk`` folder too)."""
    import datasets

    cols = dict(DEFAULT_COLUMNS, **(columns or {}))
    path = Path(name)
    try:
        if path.is_dir() and any((path / f).is_file() for f in _SAVED_MARKERS):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise InputError(f"dataset {name} has no split {split!r}", fix=f"use --split one of {', '.join(ds)}")
                ds = ds[split]
            stream = ds.to_iterable_dataset()
        else:
            stream = datasets.load_dataset(name, config, split=split, streaming=True, revision=revision)
    except InputError:
        raise
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
        msg = " ".join(str(e).split())[:200]
        raise InputError(f"cannot open dataset {name!r} split {split!r} ({msg})",
                         fix="check the name, --split and the network (or pass a local dataset folder)") from None
    features = getattr(stream, "column_names", None) or []
    missing = [f"{role}={col}" for role, col in cols.items()
               if features and col not in features and role != "answer"]
    if missing:
        raise InputError(f"dataset {name} has no column {', '.join(missing)} (columns: {', '.join(features)})",
                         fix="map the roles with --columns image=COL,question=COL,answer=COL")
    has_answer = not features or cols["answer"] in features
    items: list[EvalItem] = []
    for i, row in enumerate(stream):
        if i >= limit:
            break
        items.append(EvalItem(id=str(row.get("id", i)), question=str(row[cols["question"]]),
                              image=_to_image(row.get(cols["image"])),
                              answer=_answer(row.get(cols["answer"])) if has_answer else None))
    return _finish(f"dataset:{name}[{split}]", items, kind="dataset", dataset=name, split=split, columns=cols)


def write_folder(es: EvalSet | Iterable[EvalItem], folder: Path | str) -> Path:
    """Write items as a local eval folder (``questions.jsonl`` + ``images/``): the inverse of ``load_folder``."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for k, it in enumerate(es.items if isinstance(es, EvalSet) else es):
        rel = None
        if it.image is not None:
            rel = f"images/{k:05d}.png"
            it.image.save(folder / rel)
        lines.append(json.dumps({"id": it.id, "image": rel, "question": it.question, "answer": it.answer},
                                ensure_ascii=False))
    (folder / QUESTIONS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder
