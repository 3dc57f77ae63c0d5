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


def write_manifest(out: Path, content: dict[str, Any]) -> dict[str, Any]:
    """Write ``out``'s manifest.json: ``content`` (``manifest_content.manifest_content``) with the size and sha256
    of every file already in ``out`` and the build record (when). Returns the manifest written."""
    import time

    manifest = {**content, "files": file_entries(out),
                BUILD: {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    return manifest


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


def validation_summary(validation: dict[str, Any] | None) -> dict[str, Any] | None:
    """The manifest's ``validation`` entry from a bundle's validation.json (None: not validated): its state
    (``status``, ``not_gated``: see ``validators.status``) and each check's status, metrics and gates."""
    if validation is None:
        return None
    from ovexport.validators.status import state_of

    return {**state_of(validation), "passed": validation.get("passed"), "ov_config": validation.get("ov_config"),
            "device": validation.get("device"),
            "checks": {c["name"]: {"status": c.get("status"), "passed": c["passed"], "metrics": c["metrics"],
                                   "gates": c.get("gates", [])}
                       for c in validation.get("checks", [])}}


def validation_state(manifest: dict[str, Any]) -> str:
    """'passed', 'not_gated', 'failed' or 'not_validated' (no validate step ran). A bundle written before the
    three states is not gated unless each of its parts' checks shows a gate that held."""
    from ovexport.validators.status import state_of

    return state_of(manifest.get("validation"))["status"]


def validation_passed(manifest: dict[str, Any]) -> bool:
    """Did the bundle's validation pass (every gate held)?"""
    from ovexport.validators.status import PASSED

    return validation_state(manifest) == PASSED


def unvalidated_warning(bundle: Path) -> str | None:
    """One line for ``chat`` / ``serve`` when the bundle at ``bundle`` is not validated, not gated or failed
    (None when its validation passed)."""
    from ovexport.validators.status import phrase

    path = Path(bundle) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    if validation_passed(manifest):
        return None
    what = phrase(manifest.get("validation"))
    head, _, rest = what.partition(":")
    return (f"warning: {manifest.get('name', bundle)} {manifest.get('version', '')}: validation {head.upper()}"
            f"{':' + rest if rest else ''}; its outputs were not all checked against the source model "
            "(see its validation.json; rebuild with the validate step or `ovexport validate` it)")
