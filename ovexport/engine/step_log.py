"""A step's log file, and the known third-party warnings that go there instead of the screen.

Converting a model prints warnings its user can do nothing about: torch.jit's "`torch.jit.trace` is
deprecated" (FutureWarning, twice per traced model) and the TracerWarnings timm's SigLIP emits while being
traced. They bury the lines that matter, so while a step runs (and only then) they are written to
``<work>/logs/<step>.log``; any other warning is shown as usual. ``warnings.catch_warnings`` restores the
filters and ``showwarning`` when the step ends, so nothing leaks into the caller.
"""
from __future__ import annotations

import contextlib
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

LOG_DIR = "logs"

# (category name, message pattern): a category is matched by name so that torch need not be imported here
KNOWN_WARNINGS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("FutureWarning", re.compile(r"`?torch\.jit\.\w+`? is deprecated")),
    ("DeprecationWarning", re.compile(r"`?torch\.jit\.\w+`? is deprecated")),
    ("TracerWarning", re.compile(r".")),  # torch.jit.TracerWarning, from tracing timm / transformers models
)


def step_log_path(work: Path, step_name: str) -> Path:
    return Path(work) / LOG_DIR / f"{step_name or 'step'}.log"


def is_known(message: Warning | str, category: type[Warning]) -> bool:
    names = {c.__name__ for c in category.__mro__}
    text = str(message)
    return any(name in names and pattern.search(text) for name, pattern in KNOWN_WARNINGS)


def start_log(path: Path, step_name: str) -> None:
    """Start the log afresh: it holds the latest run of its step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {step_name} started {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n",
                    encoding="utf-8")


def append_line(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line.rstrip("\n") + "\n")


@contextlib.contextmanager
def known_warnings_to_log(path: Path) -> Iterator[Path]:
    """Within the block, known third-party warnings are appended to ``path`` (with where they came from)
    instead of being printed; others are printed as usual. Filters and ``showwarning`` are restored after."""
    path = Path(path)
    with warnings.catch_warnings():
        shown = warnings.showwarning  # the one in force (pytest's, or Python's)

        def show(message, category, filename, lineno, file=None, line=None):
            if is_known(message, category):
                append_line(path, f"{time.strftime('%H:%M:%S')} {filename}:{lineno}: {category.__name__}: {message}")
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        yield path
