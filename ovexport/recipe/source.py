"""Where a checkpoint comes from: ``hf://owner/name@<commit>``, a local directory, or ``synthetic://``.

``parse_source`` raises ``ValueError`` with a message that says how to fix the string; the recipe schema
reuses it as a pydantic validator. Nothing here touches the network or the file system (a local path is
not checked for existence: that is the download step's job).
"""
from __future__ import annotations

import os.path
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl

SourceKind = Literal["hf", "local", "synthetic"]
HF_EXAMPLE = "hf://<owner>/<name>@<40-hex commit sha>"

_COMMIT_RE = re.compile(r"^[0-9a-fA-F]{40}$")
# Hugging Face repo ids: owner/name, letters, digits, '-', '_', '.'; no leading/trailing '.' or '-'.
_REPO_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@dataclass(frozen=True)
class Source:
    """A parsed checkpoint source. Only the fields of its ``kind`` are set, the others are None."""

    kind: SourceKind
    repo_id: str | None = None      # hf
    revision: str | None = None     # hf: 40-hex commit sha, lower case
    path: Path | None = None        # local: absolute when a base_dir was given or the path was absolute
    size: str | None = None         # synthetic: a size some model family writes, or a registered synthetic source
    seed: int | None = None         # synthetic: >= 0

    @property
    def uri(self) -> str:
        """The canonical string: parsing it again gives an equal Source."""
        if self.kind == "hf":
            return f"hf://{self.repo_id}@{self.revision}"
        if self.kind == "synthetic":
            return f"synthetic://{self.size}?seed={self.seed}"
        return self.path.as_posix() if self.path is not None else ""

    def __str__(self) -> str:
        return self.uri


def parse_source(s: str, base_dir: Path | str | None = None) -> Source:
    """Parse a recipe's ``source`` string.

    - ``hf://<owner>/<name>@<40-hex commit>``: the revision is required and must be a commit sha (a branch or
      tag can move, and a recipe must build the same thing every time).
    - ``synthetic://<size>`` with optional ``?seed=<int >= 0>`` (default 0); the sizes are those the model
      families declare (``ModelFamily.synthetic_sizes``) and the registered synthetic sources (the trained fixtures).
    - anything else without a ``scheme://`` is a local directory: absolute, or relative to ``base_dir``
      (the recipe file's directory) when given, otherwise kept relative. ``~`` is expanded.
    """
    if not isinstance(s, str):
        raise ValueError(f"source must be a string, got {type(s).__name__}")
    text = s.strip()
    if not text:
        raise ValueError(f"source is empty; use {HF_EXAMPLE}, synthetic://{synthetic_sizes()[0]}?seed=0 or a local "
                         "directory")
    m = _SCHEME_RE.match(text)
    if m is None:
        return _parse_local(text, base_dir)
    scheme = m.group(1).lower()
    rest = text[m.end():]
    if scheme == "hf":
        return _parse_hf(text, rest)
    if scheme == "synthetic":
        return _parse_synthetic(text, rest)
    raise ValueError(
        f"unknown source scheme '{m.group(1)}://' in {text!r}; use hf://<owner>/<name>@<commit sha>, "
        f"synthetic://{'|'.join(synthetic_sizes())}?seed=N, or a local directory path")


def synthetic_sizes() -> tuple[str, ...]:
    """The sizes the registered model families and synthetic sources can write (asked, not hard-coded)."""
    from ovexport.models.registry import synthetic_sizes as family_sizes
    return family_sizes()


def _parse_hf(text: str, rest: str) -> Source:
    repo_id, sep, revision = rest.partition("@")
    repo_id = repo_id.strip("/")
    if not _REPO_ID_RE.match(repo_id):
        raise ValueError(f"bad Hugging Face repo id {repo_id!r} in {text!r}; expected {HF_EXAMPLE}")
    if not sep or not revision:
        raise ValueError(f"source {text!r} has no revision: a recipe must pin a commit sha, "
                         f"e.g. hf://{repo_id}@<40-hex commit sha>")
    if not _COMMIT_RE.match(revision):
        raise ValueError(f"revision {revision!r} in {text!r} is not a commit sha: pin a 40-hex commit sha "
                         "(branches and tags can move), e.g. "
                         f"hf://{repo_id}@187851962daa9b63072d40ec802f597b71bff532")
    return Source(kind="hf", repo_id=repo_id, revision=revision.lower())


def _parse_synthetic(text: str, rest: str) -> Source:
    size, _, query = rest.partition("?")
    size = size.strip("/")
    sizes = synthetic_sizes()
    if size not in sizes:
        raise ValueError(f"unknown synthetic size {size!r} in {text!r}; use one of "
                         + ", ".join(f"synthetic://{x}" for x in sizes))
    seed = 0
    if query:
        try:
            params = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ValueError(f"bad query {query!r} in {text!r}; expected ?seed=<int>") from None
        for key, value in params:
            if key != "seed":
                raise ValueError(f"unknown synthetic parameter {key!r} in {text!r}; only 'seed' is allowed")
            if not re.fullmatch(r"[0-9]+", value):
                raise ValueError(f"synthetic seed must be an integer >= 0, got {value!r} in {text!r}")
            seed = int(value)
    return Source(kind="synthetic", size=size, seed=seed)


def _parse_local(text: str, base_dir: Path | str | None) -> Source:
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if path.is_absolute():
        # normalise '..' without touching the file system (no existence check, no symlink resolution)
        path = Path(os.path.normpath(str(path)))
    return Source(kind="local", path=path)


# ---------------------------------------------------------------------------------------------------------
# calibration sources: "builtin" | "hf-dataset:<name>[:<split>]" | a local directory


@dataclass(frozen=True)
class CalibrationSource:
    kind: Literal["builtin", "hf-dataset", "local"]
    dataset: str | None = None   # hf-dataset
    split: str | None = None     # hf-dataset, default "train"
    path: Path | None = None     # local: directory with images and questions.jsonl

    @property
    def uri(self) -> str:
        if self.kind == "builtin":
            return "builtin"
        if self.kind == "hf-dataset":
            return f"hf-dataset:{self.dataset}:{self.split}"
        return self.path.as_posix() if self.path is not None else ""


_DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_SPLIT_RE = re.compile(r"^[A-Za-z0-9_.\-\[\]%:+]+$")


def parse_calibration_source(s: str, base_dir: Path | str | None = None) -> CalibrationSource:
    """``builtin`` (a small generated set shipped with ovexport), ``hf-dataset:<name>[:<split>]``, or a local
    directory (absolute or relative to ``base_dir``) holding images and ``questions.jsonl``."""
    if not isinstance(s, str):
        raise ValueError(f"calibration source must be a string, got {type(s).__name__}")
    text = s.strip()
    if not text:
        raise ValueError("calibration source is empty; use 'builtin', 'hf-dataset:<name>[:<split>]' or a directory")
    if text == "builtin":
        return CalibrationSource(kind="builtin")
    if text.startswith("hf-dataset:"):
        name, _, split = text[len("hf-dataset:"):].partition(":")
        if not _DATASET_RE.match(name):
            raise ValueError(f"bad dataset name {name!r} in {text!r}; expected hf-dataset:<name>[:<split>], "
                             "e.g. hf-dataset:lmms-lab/COCO-Caption:val")
        if split and not _SPLIT_RE.match(split):
            raise ValueError(f"bad dataset split {split!r} in {text!r}")
        return CalibrationSource(kind="hf-dataset", dataset=name, split=split or "train")
    if _SCHEME_RE.match(text):
        raise ValueError(f"unknown calibration source {text!r}; use 'builtin', 'hf-dataset:<name>[:<split>]' "
                         "or a local directory of images + questions.jsonl")
    local = _parse_local(text, base_dir)
    return CalibrationSource(kind="local", path=local.path)
