"""What makes two builds of one recipe byte-identical: no bundle file carries a path of the machine that built
it, a timing, or a clock reading (those stay in the work directory's lock file and the manifest's build record).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .layout import VALIDATION

# keys of validation.json that describe the build machine or the run, not the bundle
_MACHINE_KEYS = frozenset({"checkpoint", "ir_dir", "bundle", "duration_s", "traceback", "peak_rss_after_check"})


def local_paths(*extra: str | Path) -> list[str]:
    """Absolute paths of this machine that must not appear in a bundle (longest first, so the most specific
    is replaced first)."""
    paths = {str(Path(p).expanduser().absolute()) for p in extra if p}
    paths |= {str(Path.home()), os.getcwd()}
    import tempfile
    paths.add(tempfile.gettempdir())
    return sorted((p for p in paths if len(p) > 1), key=len, reverse=True)


def scrub(obj: Any, paths: list[str]) -> Any:
    """``obj`` with every occurrence of one of ``paths`` inside a string replaced by ``<local>``."""
    if isinstance(obj, dict):
        return {k: scrub(v, paths) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v, paths) for v in obj]
    if isinstance(obj, str):
        for p in paths:
            if p in obj:
                obj = obj.replace(p, "<local>")
        return obj
    return obj


def bundle_validation(report: dict, paths: list[str]) -> dict:
    """The validation report as shipped in a bundle: without paths, timings or tracebacks."""
    def strip(o: Any) -> Any:
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k not in _MACHINE_KEYS}
        if isinstance(o, list):
            return [strip(v) for v in o]
        return o
    return scrub(strip(report), paths)


def ship_validation(report_file: Path, paths: list[str], out: Path) -> dict | None:
    """Write the validate step's ``report_file`` into the bundle ``out`` as shipped (``bundle_validation``) and
    return it; None (nothing written) when there is no report: the bundle was not validated."""
    if not report_file.is_file():
        return None
    validation = bundle_validation(json.loads(report_file.read_text()), paths)
    (out / VALIDATION).write_text(json.dumps(validation, indent=2, ensure_ascii=False) + "\n")
    return validation


LOCAL_SOURCES = "bundle-source.json"  # in the work directory: {version: this machine's source checkpoint}


def record_checkpoint(work: Path, version: str, ckpt: Path) -> None:
    """Note in the work directory ``work`` that ``version`` was built from ``ckpt`` on this machine (for
    ``ovexport validate`` of the bundle later): outside the bundle, which holds no path of this machine."""
    local = Path(work) / LOCAL_SOURCES
    try:
        recorded = json.loads(local.read_text())
    except (OSError, ValueError):
        recorded = {}
    local.write_text(json.dumps({**recorded, version: str(ckpt)}, indent=1) + "\n")


def recorded_checkpoint(bundle: Path) -> Path | None:
    """The checkpoint the bundle ``<root>/<name>/<version>`` was built from on this machine, if recorded."""
    bundle = Path(bundle).absolute()
    f = bundle.parent.parent / ".work" / bundle.parent.name / LOCAL_SOURCES
    try:
        path = json.loads(f.read_text()).get(bundle.name)
    except (OSError, ValueError):
        return None
    return Path(path) if path else None
