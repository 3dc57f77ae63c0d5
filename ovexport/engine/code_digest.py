"""What a step's (or a cache's) fingerprint says about code and tools: digests of the Python sources that
really run, tool versions, and hard-linking files between artifacts.

``module_closure("ovexport.steps.convert")`` is the static import closure of a module inside its top-level
package: every ``import`` / ``from ... import`` statement of every module reached (at module level or inside a
function: lazy imports run too), relative imports included, ``from pkg import name`` following ``pkg.name``
when it is a submodule, and the ``__init__.py`` of each package on the way. Modules of other top-level
packages (torch, openvino...) are not followed: their versions are fingerprinted instead. Code reached
through a registry at run time (a model family) is not a static import: callers add its entry modules.

A path or module that does not exist is an error, never an empty digest: a renamed module cannot silently
drop out of every key.
"""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import os
import shutil
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from ovexport.errors import OvexportError

_PKG_ROOT = Path(__file__).resolve().parent.parent   # the ovexport package directory
# packages whose ``__init__`` only registers plugins (importing ``ovexport.steps`` registers every step): hashed,
# never followed, so one step's closure does not hold its siblings because a module checks step names
REGISTRATIONS = ("ovexport.steps",)


class CodeDigestError(OvexportError):
    """A fingerprint names code that does not exist."""


def package_dir(top: str) -> Path:
    """The directory of top-level package ``top`` (``ovexport``: this one; tests point it at a copy)."""
    if top == "ovexport":
        return _PKG_ROOT
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        raise CodeDigestError(f"cannot find package {top!r} to fingerprint its code",
                              fix="make it importable, or fix the module name that refers to it")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (``a.b`` -> ``<a>/b.py`` or ``<a>/b/__init__.py``), or None."""
    top, _, rest = name.partition(".")
    base = package_dir(top)
    target = base.joinpath(*rest.split(".")) if rest else base
    if target.is_dir() and (target / "__init__.py").is_file():
        return target / "__init__.py"
    f = target.with_suffix(".py")
    return f if rest and f.is_file() else None


_IMPORTS: dict[tuple[str, int, int], list[tuple[str, tuple[str, ...]]]] = {}


def _imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(absolute module name or relative ``.``-prefixed one, imported names) of every import statement."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _IMPORTS:
        out: list[tuple[str, tuple[str, ...]]] = []
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                out += [(a.name, ()) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                out.append(("." * node.level + (node.module or ""), tuple(a.name for a in node.names)))
        _IMPORTS[key] = out
    return _IMPORTS[key]


def _absolute(module: str, importer: str, is_package: bool) -> str:
    """``module`` (maybe relative, ``..x``) as imported from module ``importer``."""
    level = len(module) - len(module.lstrip("."))
    if not level:
        return module
    parts = importer.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[:len(parts) - (level - 1)]
    rest = module[level:]
    return ".".join(parts + ([rest] if rest else []))


def _namespace(name: str) -> bool:
    top, _, rest = name.partition(".")
    d = package_dir(top).joinpath(*rest.split(".")) if rest else package_dir(top)
    return d.is_dir() and not (d / "__init__.py").is_file()


def _require(name: str, where: str) -> Path:
    f = module_file(name)
    if f is None:
        raise CodeDigestError(f"{where} names module {name!r}, which does not exist",
                              fix="update the import or the entry-module name to the module's new place")
    return f


def module_closure(*modules: str, stop: Iterable[str] = ()) -> dict[str, Path]:
    """``{module name: source file}`` of ``modules`` and everything they import inside their own top-level
    packages and ovexport (a model family kept in another package), sorted by name. A package passed through on the way to a submodule (``a`` and ``a.b`` for
    ``a.b.c``) is hashed but its own imports are not followed (they are side effects of the import, not code
    the module calls); a package imported for itself (``from a.b import f``) is followed. Modules in ``stop``
    are hashed and not followed: a registry's dispatch module (a model family's registration, whose lazy
    imports are the family's entry modules, added by role)."""
    stop = {*REGISTRATIONS, *stop}
    seen: dict[str, Path] = {}
    followed: set[str] = set()
    todo = [(m, "a fingerprint", True) for m in modules]
    while todo:
        name, where, follow = todo.pop()
        if name in followed or (name in seen and not follow):
            continue
        parents = name.split(".")
        for i in range(1, len(parents)):
            todo.append((".".join(parents[:i]), where, False))
        if name not in seen and not follow and _namespace(name):
            continue                                     # a folder without __init__.py: nothing runs
        f = seen[name] = seen.get(name) or _require(name, where)
        if not follow or name in stop:
            continue
        followed.add(name)
        top, is_pkg = parents[0], f.name == "__init__.py"
        importer = f"{f} (module {name})"
        for mod, names in _imports(f):
            target = _absolute(mod, name, is_pkg) if mod.startswith(".") else mod
            if not target or target.split(".")[0] not in (top, "ovexport"):
                continue
            subs = [f"{target}.{n}" for n in names if n != "*" and module_file(f"{target}.{n}") is not None]
            # ``from pkg import sub``: the package runs as a parent only, unless a name is not a submodule
            todo.append((target, importer, len(subs) < len(names) or not names))
            todo += [(s, importer, True) for s in subs]
    return dict(sorted(seen.items()))


def _update(h, label: str, f: Path) -> None:
    h.update(label.encode())
    h.update(b"\0")
    h.update(f.read_bytes())


def modules_digest(*modules: str, stop: Iterable[str] = ()) -> str:
    """sha256[:16] of the sources of ``modules``' import closure (module names and bytes)."""
    h = hashlib.sha256()
    for name, f in module_closure(*modules, stop=stop).items():
        _update(h, name, f)
    return h.hexdigest()[:16]


def closure_files(*modules: str, stop: Iterable[str] = ()) -> list[str]:
    """The closure as paths relative to their package's parent (for messages and tests)."""
    out = []
    for name, f in module_closure(*modules, stop=stop).items():
        out.append(str(f.relative_to(package_dir(name.split(".")[0]).parent)))
    return out


def code_digest(*parts: str) -> str:
    """sha256[:16] of Python sources given as paths: sub-packages or single files relative to the ovexport
    package, or absolute paths for code outside it. A path that does not exist is a ``CodeDigestError``.
    Prefer ``modules_digest``: it follows the imports instead of a hand-kept list."""
    h = hashlib.sha256()
    for part in parts:
        target = _PKG_ROOT / part
        if not target.exists():
            raise CodeDigestError(f"fingerprinted code {part!r} does not exist ({target})",
                                  fix="update the path to the code's new place (a renamed or deleted module)")
        base = _PKG_ROOT if target.is_relative_to(_PKG_ROOT) else target.parent
        files = [target] if target.is_file() else sorted(target.rglob("*.py"))
        for f in files:
            h.update(str(f.relative_to(base)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def versions(*packages: str) -> dict[str, str]:
    """``{distribution: version}``, ``"absent"`` for one that is not installed."""
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "absent"
    return out


def link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link (instant, no extra disk) when possible, else copy. Artifacts are never edited in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    src = src.resolve()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
