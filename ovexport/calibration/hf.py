"""``hf-dataset:<name>[:<split>]``: image + question pairs from a Hugging Face dataset.

``<name>`` is a Hub dataset id (loaded with ``datasets.load_dataset``, streamed so that only the rows used
are fetched) or a local directory: one written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
(loaded with ``datasets.load_from_disk``), or a folder of data files ``load_dataset`` understands. A
relative local name resolves against the recipe's directory, then the working directory.

The image column is the first ``datasets.Image`` feature, else a column named like ``image``; the question
column is the first text column named like ``question`` / ``instruction`` / ``prompt`` / ``text``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from ovexport.errors import InputError

from .sample import CalibrationSample

IMAGE_COLUMNS = ("image", "images", "img", "picture", "photo", "image_url", "url", "image_path", "file_name")
QUESTION_COLUMNS = ("question", "questions", "instruction", "prompt", "query", "text", "caption", "captions",
                    "sentence")
OFFLINE_FIX = ("check the network connection (or set HF_ENDPOINT / a proxy), or use calibration.source: builtin "
               "or a local directory of images + questions.jsonl")
URL_TIMEOUT_S = 30


def resolve_local(name: str, base_dir: Path | str | None = None) -> Path | None:
    """The local directory ``name`` denotes, if any (absolute, else under base_dir, else under cwd)."""
    p = Path(name).expanduser()
    cands = [p] if p.is_absolute() else ([Path(base_dir) / p] if base_dir is not None else []) + [Path.cwd() / p]
    for c in cands:
        if c.is_dir():
            return c
    return None


def _is_saved_dataset(path: Path) -> bool:
    return (path / "state.json").is_file() or (path / "dataset_dict.json").is_file()


def _pick_split(ds, split: str, where: str):
    import datasets

    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        base = split.split("[", 1)[0]
        if base not in ds:
            raise InputError(f"{where} has no split {base!r} (splits: {', '.join(ds) or 'none'})",
                             fix=f"write hf-dataset:<name>:<split> with one of {', '.join(ds)}")
        ds = ds[base]
    return ds


def open_dataset(name: str, split: str = "train", base_dir: Path | str | None = None):
    """A ``datasets.Dataset`` / ``IterableDataset`` for ``name`` and ``split`` (see the module doc)."""
    try:
        import datasets
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError("hf-dataset calibration needs the 'datasets' package", fix="pip install datasets") from None
    where = f"hf-dataset:{name}:{split}"
    local = resolve_local(name, base_dir)
    try:
        if local is not None and _is_saved_dataset(local):
            return _pick_split(datasets.load_from_disk(str(local)), split, where)
        if local is not None:
            return datasets.load_dataset(str(local), split=split)
        # stream from the Hub: only the rows used are fetched (a "train[:10]" split needs a full download)
        return datasets.load_dataset(name, split=split, streaming="[" not in split)
    except InputError:
        raise
    except (ConnectionError, TimeoutError) as exc:
        raise InputError(f"cannot load {where}: the Hugging Face Hub is unreachable ({_short(exc)})",
                         fix=OFFLINE_FIX) from None
    except FileNotFoundError as exc:
        raise InputError(f"cannot load {where}: not found on the Hub nor as a local directory ({_short(exc)})",
                         fix="check the dataset id (owner/name) or the path; offline, use builtin or a local "
                             "directory") from None
    except ValueError as exc:  # unknown split, bad config
        raise InputError(f"cannot load {where}: {_short(exc)}",
                         fix="check the split name (e.g. train, validation)") from None
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (DatasetNotFoundError, HfHubHTTPError...)
        kind = type(exc).__name__
        if "NotFound" in kind or "Gated" in kind or "Repository" in kind:
            raise InputError(f"cannot load {where}: {kind}: {_short(exc)}",
                             fix="check the dataset id and that you have access (HF_TOKEN for gated datasets)"
                             ) from None
        if "Offline" in kind or "Connection" in kind or "Timeout" in kind or "HTTP" in kind:
            raise InputError(f"cannot load {where}: the Hugging Face Hub is unreachable ({kind}: {_short(exc)})",
                             fix=OFFLINE_FIX) from None
        raise


def _short(exc: BaseException, n: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _columns(ds, first: dict | None) -> tuple[list[str], dict]:
    features = getattr(ds, "features", None) or {}
    cols = list(features) if features else list(first or {})
    return cols, dict(features)


def _inner(feature):
    """The element feature of a list-like feature (Sequence / List / [feature]), else None."""
    if isinstance(feature, list):
        return feature[0] if feature else None
    return getattr(feature, "feature", None)


def find_columns(ds, first: dict | None, where: str) -> tuple[str, str]:
    """(image column, question column) of a dataset; ``InputError`` naming the columns found otherwise."""
    import datasets

    cols, features = _columns(ds, first)
    lower = {c.lower(): c for c in cols}
    image_col = next((c for c, f in features.items()
                      if isinstance(f, datasets.Image) or isinstance(_inner(f), datasets.Image)), None)
    if image_col is None:
        image_col = next((lower[n] for n in IMAGE_COLUMNS if n in lower), None)
    if image_col is None and first is not None:
        image_col = next((c for c, v in first.items() if isinstance(v, Image.Image)), None)

    def is_text(c: str) -> bool:
        f = features.get(c)
        if f is not None:
            f = f if isinstance(f, datasets.Value) else _inner(f)
            return isinstance(f, datasets.Value) and f.dtype in ("string", "large_string")
        v = None if first is None else first.get(c)
        return isinstance(v, str) or (isinstance(v, list) and bool(v) and isinstance(v[0], str))

    question_col = next((lower[n] for n in QUESTION_COLUMNS if n in lower and is_text(lower[n])), None)
    problems = []
    if image_col is None:
        problems.append("no image column (a datasets.Image feature or a column named "
                        + "/".join(IMAGE_COLUMNS[:3]) + ")")
    if question_col is None:
        problems.append("no question column (a text column named " + "/".join(QUESTION_COLUMNS[:5]) + ")")
    if problems:
        raise InputError(f"{where}: {' and '.join(problems)}; columns found: {', '.join(cols) or 'none'}",
                         fix="use a dataset with image and question columns, or a local directory of images + "
                             "questions.jsonl")
    return image_col, question_col


def to_image(value: Any, where: str, root: Path | None = None) -> Image.Image:
    """A dataset cell -> RGB PIL image (PIL image, {'bytes'|'path'}, file path or http(s) URL, or a list)."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise InputError(f"{where}: empty image list", fix="drop rows without images")
        value = value[0]
    try:
        if isinstance(value, Image.Image):
            return value.convert("RGB")
        if isinstance(value, dict):
            if value.get("bytes"):
                return Image.open(io.BytesIO(value["bytes"])).convert("RGB")
            if value.get("path"):
                value = value["path"]
        if isinstance(value, bytes):
            return Image.open(io.BytesIO(value)).convert("RGB")
        if isinstance(value, str):
            if value.startswith(("http://", "https://")):
                return _fetch(value, where)
            p = Path(value)
            if not p.is_absolute() and root is not None:
                p = root / p
            return Image.open(p).convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{where}: cannot read the image ({_short(exc)})",
                         fix="check the dataset's image column") from None
    raise InputError(f"{where}: the image cell is a {type(value).__name__}, not an image",
                     fix="use a dataset whose image column holds images, file paths or URLs")


def _fetch(url: str, where: str) -> Image.Image:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as resp:  # noqa: S310 - http(s) only
            data = resp.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise InputError(f"{where}: cannot download image {url} ({_short(exc)}); the network may be unavailable",
                         fix=OFFLINE_FIX) from None
    return Image.open(io.BytesIO(data)).convert("RGB")


def _question(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = next((v for v in value if isinstance(v, str) and v.strip()), None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def hf_samples(name: str, split: str = "train", limit: int | None = None,
               base_dir: Path | str | None = None) -> list[CalibrationSample]:
    """The first ``limit`` (image, question) rows of a dataset; rows without a question are skipped."""
    where = f"hf-dataset:{name}:{split}"
    ds = open_dataset(name, split, base_dir)
    local = resolve_local(name, base_dir)
    rows = iter(ds)
    try:
        first = next(rows)
    except StopIteration:
        raise InputError(f"{where} is empty", fix="use another split or dataset") from None
    except (ConnectionError, TimeoutError) as exc:
        raise InputError(f"cannot read {where}: the Hugging Face Hub is unreachable ({_short(exc)})",
                         fix=OFFLINE_FIX) from None
    image_col, question_col = find_columns(ds, first, where)
    out: list[CalibrationSample] = []
    i = 0
    row: dict | None = first
    while row is not None and (limit is None or len(out) < limit):
        q = _question(row.get(question_col))
        if q is not None:
            img = to_image(row.get(image_col), f"{where} row {i} column {image_col!r}", local)
            out.append(CalibrationSample(img, q, origin=f"{where}[{i}]"))
        i += 1
        try:
            row = next(rows)
        except StopIteration:
            row = None
        except (ConnectionError, TimeoutError) as exc:
            raise InputError(f"cannot read {where}: the Hugging Face Hub is unreachable ({_short(exc)})",
                             fix=OFFLINE_FIX) from None
    return out
