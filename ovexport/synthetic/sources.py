"""Synthetic sources beyond a model family's own sizes: checkpoints some other package builds (a test fixture trained
on generated data), registered by name so that ``synthetic://<name>`` finds them while the family knows nothing of
them.

A source names the family its checkpoint is of (by registry name), the family size it trains (``ovexport synth
--size S --trained``), how to write it, and the modules whose import closure decides its bytes (the download step
fingerprints them; a cached build is keyed by them). The built-in fixtures register on first use
(``ovexport.fixtures``); a module that imports this one may register more.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BUILTIN_MODULES = ("ovexport.fixtures",)
# where a checkpoint carries its held-out questions (an eval folder: questions.jsonl + images/)
HELDOUT_DIR = "heldout"


@dataclass(frozen=True)
class SyntheticSource:
    name: str                       # what ``synthetic://<name>`` names
    family: str                     # the registry name of the model family its checkpoint is of
    trains: str                     # the family's synthetic size it is a trained version of
    write: Callable[..., Path]      # write(out, seed=0, progress=None) -> out; progress(done, total)
    code: tuple[str, ...]           # modules whose import closure decides the checkpoint's bytes
    heldout: bool = False           # the checkpoint carries a held-out set in ``HELDOUT_DIR/``
    report: Callable[[Path], str | None] | None = None   # one line about a written checkpoint (the CLI prints it)


_SOURCES: dict[str, SyntheticSource] = {}
_LOADED = False


def register_source(source: SyntheticSource) -> SyntheticSource:
    other = _SOURCES.get(source.name)
    if other is not None and (other.family, other.trains) != (source.family, source.trains):
        raise ValueError(f"synthetic source {source.name!r} is already registered (for {other.family!r})")
    _SOURCES[source.name] = source
    return source


def sources() -> dict[str, SyntheticSource]:
    """Every registered source by name (the built-in fixtures imported first)."""
    global _LOADED
    if not _LOADED:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        _LOADED = True
    return dict(_SOURCES)


def source(name: str) -> SyntheticSource | None:
    return sources().get(name)


def trained_fixtures(family: str) -> dict[str, SyntheticSource]:
    """``{family size: source}`` of the trained fixtures of ``family`` (a registry name)."""
    return {s.trains: s for s in sources().values() if s.family == family}


def heldout_sources() -> tuple[str, ...]:
    """The names of the sources whose checkpoints carry a held-out set."""
    return tuple(name for name, s in sources().items() if s.heldout)
