"""``<work>/ovexport.lock.json``: what ran, with which fingerprint, and what it produced.

Layout::

    {"version": 1,
     "steps": {name: {"fingerprint", "params", "inputs": {artifact: digest}, "tools",
                      "output": {"path", "digest", "files"}, "metrics",
                      "finished_at", "duration_s", "peak_rss_bytes"}}}

``output.path`` is stored relative to the work directory (so a moved output root stays up to date).
The file is always written atomically. A missing file is an empty lock; an unreadable one is an
empty lock plus a warning (everything reruns).
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

LOCK_NAME = "ovexport.lock.json"
LOCK_VERSION = 1


class Lock:
    def __init__(self, path: str | os.PathLike, steps: dict[str, dict] | None = None,
                 warning: str | None = None):
        self.path = Path(path)
        self.steps: dict[str, dict] = dict(steps or {})
        self.warning = warning  # set when an existing lock file could not be used

    @classmethod
    def for_work(cls, work: str | os.PathLike) -> "Lock":
        return cls.load(Path(work) / LOCK_NAME)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Lock":
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as e:
            return cls(path, warning=f"cannot read lock file {path} ({e}); every step will rerun")
        try:
            data = json.loads(text)
            problem = _check(data)
        except ValueError as e:
            problem = f"not valid JSON: {e}"
        if problem:
            return cls(path, warning=f"ignoring corrupt lock file {path} ({problem}); "
                                     f"every step will rerun")
        return cls(path, data["steps"])

    def get(self, name: str) -> dict | None:
        return self.steps.get(name)

    def set(self, name: str, entry: dict) -> None:
        self.steps[name] = entry

    def remove(self, name: str) -> bool:
        return self.steps.pop(name, None) is not None

    def to_dict(self) -> dict[str, Any]:
        return {"version": LOCK_VERSION, "steps": self.steps}

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        self.warning = None

    def set_aside_corrupt(self) -> Path | None:
        """Rename an unusable lock file to ``<name>.corrupt-<time>`` (kept for inspection)."""
        if self.warning is None or not self.path.exists():
            return None
        dest = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        with contextlib.suppress(OSError):
            os.replace(self.path, dest)
            return dest
        return None


def _check(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "top level is not an object"
    if data.get("version") != LOCK_VERSION:
        return f"unsupported version {data.get('version')!r}, expected {LOCK_VERSION}"
    steps = data.get("steps")
    if not isinstance(steps, dict):
        return "'steps' is not an object"
    for name, e in steps.items():
        if not isinstance(e, dict) or not isinstance(e.get("fingerprint"), str):
            return f"entry {name!r} has no fingerprint"
        out = e.get("output")
        if (not isinstance(out, dict) or not isinstance(out.get("path"), str)
                or not isinstance(out.get("digest"), str) or not isinstance(out.get("files"), dict)):
            return f"entry {name!r} has no valid output record"
    return None
