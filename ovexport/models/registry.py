"""Model families, found from a checkpoint's ``config.json`` (like llama.cpp's conversion registry).

Generic code asks ``family_for(checkpoint)`` (or ``family_of_synthetic(size)``) and never tests a model type
itself. The built-in families register on first use; more can be added without touching ovexport: list the
modules that register them in ``$OVEXPORT_FAMILIES`` (comma-separated, importable names), e.g. a family kept
in a project's own package or, as the tests do, a toy family.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
from pathlib import Path

from ovexport.errors import CheckpointError
from ovexport.synthetic import sources as synthetic_sources

from .interface import ModelFamily

ENV_FAMILIES = "OVEXPORT_FAMILIES"
BUILTIN_MODULES = ("ovexport.models.minicpmv2.family",)

_FAMILIES: dict[str, ModelFamily] = {}
_IMPORTED: set[str] = set()


def register_family(family: ModelFamily) -> ModelFamily:
    """Add ``family`` (an object satisfying ``ModelFamily``). Its synthetic sizes must be its own: a
    ``synthetic://<size>`` source names exactly one family."""
    if not isinstance(family, ModelFamily):
        raise TypeError(f"{family!r} does not implement ovexport.models.interface.ModelFamily")
    for other in _FAMILIES.values():
        shared = set(other.synthetic_sizes) & set(family.synthetic_sizes)
        if other.name != family.name and shared:
            raise ValueError(f"family {family.name!r}: synthetic size(s) {', '.join(sorted(shared))} already "
                             f"belong to {other.name!r}")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Forget a family registered from ``$OVEXPORT_FAMILIES`` (a test that registered one cleans up with it; set the
    variable again to get it back)."""
    family = _FAMILIES.pop(name, None)
    if family is not None:
        _IMPORTED.discard(type(family).__module__)
        sys.modules.pop(type(family).__module__, None)


def _load() -> None:
    """Import the built-in family modules and those ``$OVEXPORT_FAMILIES`` names (read now, not at import:
    a step's subprocess gets the environment of the run)."""
    extra = [m.strip() for m in os.environ.get(ENV_FAMILIES, "").split(",") if m.strip()]
    for module in (*BUILTIN_MODULES, *extra):
        if module not in _IMPORTED:
            try:
                importlib.import_module(module)
            except ImportError as e:
                raise CheckpointError(f"cannot import model family module {module!r} ({e})",
                                      fix=f"fix or remove it in ${ENV_FAMILIES}") from None
            _IMPORTED.add(module)


def families() -> dict[str, ModelFamily]:
    _load()
    return dict(_FAMILIES)


def family_names() -> str:
    """``"minicpmv2 (MiniCPM-V-2), ..."``: for help texts and error messages."""
    return ", ".join(f"{f.name} ({f.display_name})" for f in families().values())


def preload_modules() -> tuple[str, ...]:
    """What the registered families ask the step fork server to import (``ModelFamily.preload``)."""
    return tuple(dict.fromkeys(m for fam in families().values() for m in (type(fam).__module__, *fam.preload)))


# what a family's ``entry_modules`` maps: the code behind each method generic code calls
CODE_ROLES = ("export", "runtime", "reference", "synthetic", "publishing")


def family_code(*roles: str, family: ModelFamily | None = None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(entry modules, registration modules)`` of ``family`` (default: every registered family) for ``roles``:
    family code is reached through this registry at run time, not by a static import, so a fingerprint adds it
    by role (the registration module is hashed but not followed: its lazy imports are the roles)."""
    unknown = [r for r in roles if r not in CODE_ROLES]
    if unknown:
        raise ValueError(f"unknown family code role(s) {unknown}; roles are {CODE_ROLES}")
    fams = [family] if family is not None else list(families().values())
    entries = [m for fam in fams for r in roles for m in fam.entry_modules.get(r, ())]
    return tuple(dict.fromkeys(entries)), tuple(dict.fromkeys(type(fam).__module__ for fam in fams))


def code_digest_of(*modules: str, roles: tuple[str, ...] = (), family: ModelFamily | None = None) -> str:
    """Digest of the code a computation runs: the import closure of ``modules`` (inside their packages) and of the
    families' entry modules for ``roles``."""
    from ovexport.engine.code_digest import modules_digest

    entries, registrations = family_code(*roles, family=family)
    return modules_digest(*modules, *entries, *registrations, stop=registrations)


def synthetic_sizes() -> tuple[str, ...]:
    """Every ``synthetic://<size>`` some family can write, in registration order, then the registered synthetic
    sources (``ovexport.synthetic.sources``: the trained fixtures)."""
    return (*(s for fam in families().values() for s in fam.synthetic_sizes), *synthetic_sources.sources())


def default_trace_size(family: ModelFamily) -> int:
    """The image size (pixels, square) ``family`` traces its image encoder at when a recipe does not say (its
    ``trace_image_size``)."""
    size = getattr(family, "trace_image_size", None)
    if not isinstance(size, int):
        raise CheckpointError(f"model family {family.name} names no default image size to trace its image encoder at",
                              fix="set export.trace_image_size in the recipe (or trace_image_size on the family)")
    return size


def get_family(name: str) -> ModelFamily:
    _load()
    try:
        return _FAMILIES[name]
    except KeyError:
        raise CheckpointError(f"unknown model family {name!r}", fix=f"use one of {', '.join(sorted(_FAMILIES))}") from None


def default_family() -> ModelFamily:
    """The first registered family (what ``ovexport synth`` writes unless told otherwise)."""
    return next(iter(families().values()))


def family_of_synthetic(size: str) -> ModelFamily:
    """The family whose checkpoint ``synthetic://<size>`` is: the one that writes the size, or a registered
    synthetic source's."""
    for fam in families().values():
        if size in fam.synthetic_sizes:
            return fam
    src = synthetic_sources.source(size)
    if src is not None:
        return get_family(src.family)
    raise CheckpointError(f"no model family writes synthetic size {size!r}",
                          fix=f"use one of {', '.join(synthetic_sizes())}")


def family_for_config(config: dict, where: str = "config.json") -> ModelFamily:
    """The one registered family whose ``matches()`` claims ``config``. Two claiming it is an error (as llama.cpp's
    registry keys a converter by ``architectures``, the pick does not depend on registration order); none
    claiming it is an error that says what the config is when a family recognises a relative it does not convert
    (the optional ``unsupported()``: MiniCPM-V-2.6 next to MiniCPM-V-2)."""
    fams = families().values()
    claims = [fam for fam in fams if fam.matches(config)]
    if len(claims) > 1:
        names = " and ".join(f"{f.name} ({type(f).__module__})" for f in claims)
        raise CheckpointError(f"{where}: families {names} both claim this config.json",
                              fix="make their matches() tell the config apart by its keys, or register only one "
                                  f"of them (${ENV_FAMILIES})")
    if claims:
        return claims[0]
    for fam in fams:
        unsupported = getattr(fam, "unsupported", None)
        known = unsupported(config) if unsupported is not None else None
        if known is not None:
            what, fix = known
            raise CheckpointError(f"{where}: {what}", fix=fix)
    kind = config.get("model_type", "?")
    raise CheckpointError(f"{where}: model_type {kind!r} with these keys is not a supported model",
                          fix=f"ovexport supports: {family_names()}")


def family_for(ckpt: Path) -> ModelFamily:
    f = Path(ckpt) / "config.json"
    if not f.is_file():
        raise CheckpointError(f"{f} is missing", fix="point the recipe's source at a complete checkpoint directory")
    return family_for_config(json.loads(f.read_text()), where=str(f))


def family_of_source(source) -> ModelFamily | None:
    """The family a parsed recipe ``Source`` builds, when that is known without downloading anything: a synthetic
    size, or a local directory whose ``config.json`` is there. None otherwise (a Hub source, a missing folder)."""
    if source.kind == "synthetic":
        return family_of_synthetic(source.size)
    if source.kind == "local" and source.path is not None and (Path(source.path) / "config.json").is_file():
        try:
            return family_for(Path(source.path))
        except (CheckpointError, ValueError):
            return None
    return None


def synthetic_code_digest(size: str) -> str:
    """Digest of the code that writes ``synthetic://<size>``: its family's synthetic entry modules and, for a
    registered synthetic source, the source's code (a trainer)."""
    src = synthetic_sources.source(size)
    return code_digest_of(*(src.code if src else ()), roles=("synthetic",), family=family_of_synthetic(size))


def write_synthetic(size: str, out: Path, seed: int = 0, progress=None) -> Path:
    """Write ``synthetic://<size>?seed=<seed>`` into ``out``: by its registered source, else by its family."""
    src = synthetic_sources.source(size)
    if src is not None:
        return src.write(out, seed=seed, progress=progress)
    return family_of_synthetic(size).write_synthetic(out, size=size, seed=seed, progress=progress)
