"""manifest.json: what a bundle is, where it came from, and the size + sha256 of each of its files."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ovexport.errors import BundleError

from .layout import MANIFEST

FORMAT = 1


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_entries(root: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {"size", "sha256"}} of every file under ``root`` except the manifest itself.

    Files are hashed on all cores (hashlib releases the GIL): the bundle's IRs are GBs.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    files = [f for f in sorted(root.rglob("*")) if f.is_file() and f.relative_to(root).as_posix() != MANIFEST]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        hashes = list(pool.map(sha256_file, files))
    return {f.relative_to(root).as_posix(): {"size": f.stat().st_size, "sha256": h} for f, h in zip(files, hashes)}


def read_manifest(bundle: Path) -> dict[str, Any]:
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        raise BundleError(f"{bundle} has no {MANIFEST}", fix="pass the directory of a bundle written by `ovexport run`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BundleError(f"{path} is not valid JSON ({e.msg})", fix="rebuild the bundle with `ovexport run`") from None


def verify_files(bundle: Path, manifest: dict[str, Any] | None = None) -> None:
    """Re-hash every file the manifest lists; a missing, truncated or modified file is a BundleError."""
    bundle = Path(bundle)
    manifest = manifest or read_manifest(bundle)
    problems = []
    for rel, want in manifest.get("files", {}).items():
        f = bundle / rel
        if not f.is_file():
            problems.append(f"{rel} is missing")
        elif f.stat().st_size != want["size"]:
            problems.append(f"{rel} is {f.stat().st_size} bytes, the manifest says {want['size']} (truncated or replaced)")
        elif sha256_file(f) != want["sha256"]:
            problems.append(f"{rel} does not match its sha256 in the manifest (modified)")
    if problems:
        raise BundleError(f"bundle {bundle} is not what its manifest describes: " + "; ".join(problems),
                          fix="do not use it: rebuild it with `ovexport run` or download it again")


BUILD = "build"   # the manifest's build record: when it was built; the only part two builds may differ in


def content_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest without its build record: equal for two builds of one recipe with the same tools."""
    return {k: v for k, v in manifest.items() if k != BUILD}


def validation_state(manifest: dict[str, Any]) -> str:
    """'passed', 'failed' or 'not validated' (no validate step ran)."""
    v = manifest.get("validation")
    if not v:
        return "not validated"
    return "passed" if v.get("passed") else "failed"


def unvalidated_warning(bundle: Path) -> str | None:
    """One line for ``chat`` / ``serve`` when the bundle at ``bundle`` has no passed validation, else None."""
    path = Path(bundle) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    state = validation_state(manifest)
    if state == "passed":
        return None
    return (f"warning: {manifest.get('name', bundle)} {manifest.get('version', '')} is {state.upper()}: its outputs "
            "were not checked against the source model (rebuild with the validate step, or `ovexport validate` it)")
