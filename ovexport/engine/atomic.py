"""Atomic outputs: a step writes into a temporary sibling directory that is renamed into place only
when it succeeded, so a crashed or interrupted step never leaves a half-written artifact behind.

Temporary names carry the pid of the process that made them (``.tmp-<name>-<pid>-<random>`` and
``.old-<name>-<pid>-<random>``) so :func:`clean_stale_temps` can remove the leftovers of dead runs
without touching those of a live one.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
OLD_PREFIX = ".old-"


def _sibling(final: Path, prefix: str) -> Path:
    return final.parent / f"{prefix}{final.name}-{os.getpid()}-{secrets.token_hex(4)}"


def remove_path(p: Path) -> None:
    """Remove a file, a symlink or a directory tree; missing is fine."""
    try:
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            if p.exists():  # read-only files or a race: one more, loud, attempt
                shutil.rmtree(p)
    except FileNotFoundError:
        pass


def replace_path(new: Path, final: Path) -> None:
    """Put ``new`` at ``final``. An existing ``final`` is renamed aside first and deleted after, so
    ``final`` is at every moment either the complete old or the complete new content."""
    old = None
    if final.exists() or final.is_symlink():
        old = _sibling(final, OLD_PREFIX)
        os.rename(final, old)
    try:
        os.rename(new, final)
    except BaseException:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        remove_path(old)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory next to ``final``; on success it replaces ``final``.

    On any exception (including KeyboardInterrupt) the temporary directory is deleted and the
    exception propagates; ``final`` is left untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(final, TMP_PREFIX)
    tmp.mkdir()
    try:
        yield tmp
        replace_path(tmp, final)
    except BaseException:
        remove_path(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write a text file via a temporary sibling + fsync + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f"{TMP_PREFIX}{path.name}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _owner_pid(name: str) -> int | None:
    # .tmp-<name>-<pid>-<random>: <name> may contain dashes, so parse from the right.
    parts = name.rsplit("-", 2)
    if len(parts) != 3:
        return None
    try:
        return int(parts[1])
    except ValueError:
        return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temps(directory: str | os.PathLike) -> list[Path]:
    """Remove ``.tmp-*`` / ``.old-*`` entries of ``directory`` left by processes that no longer run.

    Entries of this process and of live processes are kept. Returns what was removed.
    """
    d = Path(directory)
    removed: list[Path] = []
    if not d.is_dir():
        return removed
    for p in sorted(d.iterdir()):
        if not p.name.startswith((TMP_PREFIX, OLD_PREFIX)):
            continue
        pid = _owner_pid(p.name)
        if pid is not None and (pid == os.getpid() or _pid_alive(pid)):
            continue
        remove_path(p)
        removed.append(p)
    return removed
