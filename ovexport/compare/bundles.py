"""Built bundles as compare variants: one row and one results file each, all from one source.

A bundle is labelled ``name@version`` from its manifest; two bundles with the same ``name@version`` (two builds
in two output roots) are told apart by their folder, and their results files by a hash of it. The same folder
given twice is one row. Bundles of different checkpoints are refused: they would all be scored against one
reference.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ovexport.errors import InputError


@dataclass(frozen=True)
class BundleVariant:
    path: Path
    label: str          # name@version, with the folder when another bundle has the same
    name: str           # results file stem: unique per folder
    source: str | None  # the checkpoint it was built from (digest, else source uri)


def _manifest(p: Path) -> dict:
    from ovexport.bundle.manifest import read_manifest
    try:
        return read_manifest(p)
    except Exception:  # noqa: BLE001 - a bundle without a readable manifest is labelled by its path
        return {}


def bundle_variants(bundles: Sequence[str | Path]) -> list[BundleVariant]:
    paths = list(dict.fromkeys(Path(os.path.abspath(b)) for b in bundles))
    out = []
    for p in paths:
        m = _manifest(p)
        label = f"{m['name']}@{m.get('version', p.name)}" if m.get("name") else str(p)
        src = m.get("source") or {}
        out.append(BundleVariant(p, label, "", src.get("checkpoint_digest") or src.get("uri")))
    labels = [v.label for v in out]
    result = []
    for v in out:
        label = v.label if labels.count(v.label) == 1 else f"{v.label} ({v.path})"
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", v.label).strip("-")
        name = f"{stem}-{hashlib.sha256(str(v.path).encode()).hexdigest()[:8]}"
        result.append(BundleVariant(v.path, label, name, v.source))
    sources = {v.source for v in result if v.source is not None}
    if len(sources) > 1:
        first = next(v for v in result if v.source is not None)
        other = next(v for v in result if v.source is not None and v.source != first.source)
        raise InputError(f"bundles {first.label} and {other.label} were built from different checkpoints: every "
                         "bundle is scored against one reference",
                         fix="compare bundles of one source per run")
    return result
