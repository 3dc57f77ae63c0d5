"""What makes two builds of one recipe byte-identical: no bundle file carries a path of the machine that built
it, a timing, or a clock reading (those stay in the work directory's lock file and the manifest's build record).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

# keys of validation.json that describe the build machine or the run, not the bundle
_MACHINE_KEYS = frozenset({"checkpoint", "ir_dir", "bundle", "duration_s", "traceback"})


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


LOCAL_SOURCES = "bundle-source.json"  # in the work directory: {version: this machine's source checkpoint}


def recorded_checkpoint(bundle: Path) -> Path | None:
    """The checkpoint the bundle ``<root>/<name>/<version>`` was built from on this machine, if recorded."""
    bundle = Path(bundle).absolute()
    f = bundle.parent.parent / ".work" / bundle.parent.name / LOCAL_SOURCES
    try:
        path = json.loads(f.read_text()).get(bundle.name)
    except (OSError, ValueError):
        return None
    return Path(path) if path else None
