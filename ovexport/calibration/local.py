"""A local calibration set: a directory with images and ``questions.jsonl``.

Each line of ``questions.jsonl`` is ``{"image": "a.jpg", "question": "..."}``; ``image`` is relative to
the directory (or absolute). Blank lines and lines starting with ``#`` are skipped.
"""
from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ovexport.errors import InputError

from .sample import CalibrationSample

QUESTIONS = "questions.jsonl"
FORMAT = '{"image": "a.jpg", "question": "..."} per line'


def read_questions(path: Path) -> list[tuple[int, str, str]]:
    """(line number, image, question) of every entry of ``questions.jsonl``."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}", fix=f"write {QUESTIONS} as UTF-8 JSON lines, {FORMAT}") from None
    for no, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{no}: not valid JSON ({exc.msg})",
                             fix=f"write one JSON object per line, {FORMAT}") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{no}: a line must be a JSON object, got {type(row).__name__}",
                             fix=f"write {FORMAT}")
        missing = [k for k in ("image", "question") if k not in row]
        if missing:
            raise InputError(f"{path}:{no}: missing key {' and '.join(repr(k) for k in missing)} "
                             f"(keys: {', '.join(sorted(row)) or 'none'})", fix=f"write {FORMAT}")
        image, question = row["image"], row["question"]
        if not isinstance(image, str) or not image.strip():
            raise InputError(f"{path}:{no}: 'image' must be a file name, got {image!r}", fix=f"write {FORMAT}")
        if not isinstance(question, str) or not question.strip():
            raise InputError(f"{path}:{no}: 'question' must be non-empty text, got {question!r}", fix=f"write {FORMAT}")
        out.append((no, image, question))
    return out


def local_samples(directory: Path | str, limit: int | None = None) -> list[CalibrationSample]:
    """The first ``limit`` samples of a calibration directory."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError(f"calibration directory {d} does not exist",
                         fix=f"create it with images and {QUESTIONS} ({FORMAT}), or use calibration.source: builtin")
    qfile = d / QUESTIONS
    if not qfile.is_file():
        hint = ""
        if (d / "dataset_info.json").is_file() or (d / "dataset_dict.json").is_file():
            hint = f"; it looks like a saved Hugging Face dataset: use calibration.source: hf-dataset:{d.name}"
        raise InputError(f"calibration directory {d} has no {QUESTIONS}{hint}",
                         fix=f"add {QUESTIONS} with {FORMAT}")
    rows = read_questions(qfile)
    if not rows:
        raise InputError(f"{qfile} has no entries", fix=f"add lines {FORMAT}")
    out = []
    for no, name, question in rows[:limit] if limit else rows:
        img_path = Path(name) if Path(name).is_absolute() else d / name
        if not img_path.is_file():
            raise InputError(f"{qfile}:{no}: image {name!r} not found in {d}",
                             fix="put the image in the calibration directory or fix the file name")
        try:
            with Image.open(img_path) as im:
                im.load()
                image = im.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(f"{qfile}:{no}: cannot read image {name!r} ({exc})",
                             fix="use a JPEG/PNG/WebP file PIL can open") from None
        out.append(CalibrationSample(image, question.strip(), origin=f"{qfile.name}:{no}"))
    return out


def write_local_set(samples: list[CalibrationSample], directory: Path | str, fmt: str = "png") -> Path:
    """Write samples as a calibration directory (images + questions.jsonl) that ``local_samples`` reads back."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(samples):
        name = f"{i:04d}.{fmt}"
        s.image.save(d / name)
        lines.append(json.dumps({"image": name, "question": s.question}, ensure_ascii=False))
    (d / QUESTIONS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return d
