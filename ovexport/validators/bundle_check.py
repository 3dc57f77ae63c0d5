"""Re-validate a released bundle: first its files against manifest.json, then its IRs against PyTorch.

``manifest.json`` lists every file with its size and sha256 (``{"files": {relpath: {"size", "sha256"}}}``),
the checkpoint it was exported from (``source.checkpoint``, an absolute path) and the recipe
(``recipe.validation`` holds the thresholds the bundle was released with).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from ovexport.bundle.layout import MANIFEST
from ovexport.bundle.manifest import read_manifest, verify_files
from ovexport.errors import BundleError

_DONT_USE = "do not use this bundle: download it again or rebuild it with `ovexport run`"


def check_files(bundle: Path) -> tuple[dict, int]:
    """Read manifest.json and re-hash every file it lists; a missing, truncated or modified file raises
    ``BundleError`` naming it. Returns (manifest, number of files verified)."""
    bundle = Path(bundle)
    if not bundle.is_dir():
        raise BundleError(f"bundle {bundle} does not exist", fix="pass a directory written by `ovexport run`")
    manifest = read_manifest(bundle)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{bundle / MANIFEST} lists no files", fix=_DONT_USE)
    root = bundle.resolve()
    outside = [rel for rel in files if Path(rel).is_absolute() or not (bundle / rel).resolve().is_relative_to(root)]
    if outside:
        raise BundleError(f"{bundle / MANIFEST} lists {outside[0]}, outside the bundle", fix=_DONT_USE)
    verify_files(bundle, manifest)
    return manifest, len(files)


def _spec_of(manifest: dict, bundle: Path):
    from pydantic import ValidationError

    from ovexport.recipe.schema import ValidationSpec

    recipe = manifest.get("recipe") or {}
    data = recipe.get("validation") if isinstance(recipe, dict) else None
    try:
        return ValidationSpec.model_validate(data or {})
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise BundleError(f"{bundle / MANIFEST}: recipe.validation.{loc}: {first['msg']}",
                          fix="rebuild the bundle with this version of ovexport") from None


def revalidate_bundle(bundle: Path, ckpt: Path | None = None, device: str | None = None,
                      console: Console | None = None, checks: Sequence[str] | None = None) -> dict:
    """Verify the bundle's files, then run the parity checks of its IRs against the checkpoint (``ckpt``, or
    the one recorded in the manifest) with the thresholds it was released with. ``device`` None = the
    recorded one. Returns the validation report (with ``bundle`` and ``files_verified`` added)."""
    from .run_checks import run_validation

    bundle = Path(bundle)
    manifest, n_files = check_files(bundle)
    if ckpt is None:
        from ovexport.bundle.reproducible import recorded_checkpoint  # bundles record no path: the work dir does
        source: Any = manifest.get("source") or {}
        old = source.get("checkpoint") if isinstance(source, dict) else None  # bundles from before issue 9
        recorded = recorded_checkpoint(bundle) or (Path(old) if old else None)
        if not recorded:
            raise BundleError(f"no source checkpoint is recorded for {bundle} on this machine",
                              fix="pass the checkpoint directory the bundle was exported from")
        ckpt = Path(recorded)
        if not (ckpt / "config.json").is_file():
            raise BundleError(f"the checkpoint {ckpt} recorded for {bundle} is not there any more",
                              fix="pass the checkpoint directory the bundle was exported from explicitly")
    spec = _spec_of(manifest, bundle)
    if device:
        spec = spec.model_copy(update={"device": device})
    report = run_validation(Path(ckpt), bundle, spec, console=console, checks=checks)
    report["bundle"] = str(bundle.resolve())
    report["files_verified"] = n_files
    return report
