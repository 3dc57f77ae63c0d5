"""Helpers shared by the steps: tool versions, code digests, hard-linking files between artifacts."""
from __future__ import annotations

import hashlib
import os
import shutil
from importlib import metadata
from pathlib import Path

_PKG_ROOT = Path(__file__).resolve().parent.parent


class RunsFamilyCode:
    """Mixin for a step that runs a model family's code: the step fork server also imports what the
    registered families preload (``ModelFamily.preload``)."""

    @classmethod
    def preload_modules(cls) -> tuple[str, ...]:
        from ovexport.models.registry import preload_modules
        return (*super().preload_modules(), *preload_modules())  # type: ignore[misc]


def versions(*packages: str) -> dict[str, str]:
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def code_digest(*parts: str) -> str:
    """sha256 of Python sources (sub-packages or single files, relative to the ovexport package, or absolute
    paths for code outside it, e.g. a model family of another package): changing the code a step runs re-runs
    the step."""
    h = hashlib.sha256()
    for part in parts:
        target = _PKG_ROOT / part
        base = _PKG_ROOT if target.is_relative_to(_PKG_ROOT) else target.parent
        files = [target] if target.is_file() else sorted(target.rglob("*.py"))
        for f in files:
            h.update(str(f.relative_to(base)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link (instant, no extra disk) when possible, else copy. Artifacts are never edited in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = src.resolve()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
