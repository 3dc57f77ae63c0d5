"""The run cache: step outputs keyed by step fingerprint, shared by every recipe (DVC's run-cache).

A step's fingerprint hashes only what its output depends on (step name, resolved params, the
*content* digests of its inputs, tool versions, engine version): never the recipe's name or where
its work directory is. So two recipes that convert the same checkpoint compute the same fingerprint
for ``download`` and the ``convert_*`` steps, and the second one takes their outputs from here.

Layout (default ``<output.root>/.work/.runcache``; ``$OVEXPORT_RUN_CACHE`` moves it, or disables it
with ``off``)::

    <cache>/<fp[:2]>/<fp>/meta.json   {"version", "fingerprint", "step", "digest", "files", "metrics",
                                       "duration_s", "peak_rss_bytes", "finished_at", "origin"}
    <cache>/<fp[:2]>/<fp>/out/        the step's output: its files hard-linked, its symlinks re-made

No byte is copied: storing and restoring hard-link files (same inode as the recipe's artifact, so
no extra disk while the artifact exists) and re-make symlinks (the download step links into the
Hugging Face cache). A file system that cannot hard-link simply gets no run cache.

Trust: an entry is written into a ``.tmp-`` sibling and renamed into place complete, so a killed
run leaves no entry (its temp is cleaned later). On every hit the entry is verified before use:
``meta.json`` parses, names this fingerprint, and its file records hash to its stored digest; the
files on disk have exactly the recorded names, sizes and mtimes (a hard-linked file edited in place
through any of its names changes its mtime). That is the check DVC's state database makes; set
``OVEXPORT_RUN_CACHE_VERIFY=content`` (or run ``ovexport cache info --verify``) to also re-hash the
bytes. An entry that fails is deleted and the step runs again.

Outputs must never be modified in place once written (steps write new directories through
``atomic_dir``; a step reads its inputs and never writes them); the checks above catch it if they are.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .atomic import OLD_PREFIX, TMP_PREFIX, _sibling, atomic_dir, atomic_write_text, \
    clean_stale_temps, remove_path
from .fingerprint import digest_dir, digest_of_files, stat_matches

ENV_DIR = "OVEXPORT_RUN_CACHE"
ENV_VERIFY = "OVEXPORT_RUN_CACHE_VERIFY"
DEFAULT_DIR = ".runcache"  # under <output.root>/.work (recipe names cannot start with a dot)
META = "meta.json"
OUT = "out"
META_VERSION = 1
_OFF = {"off", "0", "false", "no", "none", "disabled"}


class CacheUnusable(Exception):
    """An entry cannot be stored or restored here (e.g. no hard links across file systems)."""


@dataclass
class CacheEntry:
    path: Path
    meta: dict

    @property
    def out(self) -> Path:
        return self.path / OUT

    @property
    def fingerprint(self) -> str:
        return self.meta["fingerprint"]

    @property
    def step(self) -> str:
        return self.meta.get("step", "?")

    @property
    def digest(self) -> str:
        return self.meta["digest"]

    @property
    def files(self) -> dict[str, dict]:
        return self.meta["files"]

    @property
    def origin(self) -> dict:
        return self.meta.get("origin") or {}


def cache_dir_for(output_root: str | os.PathLike) -> Path | None:
    """Where the run cache of recipes with this ``output.root`` lives; None when disabled by env."""
    env = os.environ.get(ENV_DIR, "").strip()
    if env.lower() in _OFF:
        return None
    if env:
        return Path(os.path.abspath(Path(env).expanduser()))
    return Path(os.path.abspath(Path(output_root).expanduser())) / ".work" / DEFAULT_DIR


def for_recipe(recipe: Any) -> "RunCache | None":
    d = cache_dir_for(recipe.output.root)
    return None if d is None else RunCache(d)


def chosen(run_cache: "RunCache | bool | None", recipe: Any) -> "RunCache | None":
    """The run cache ``plan``/``run`` use: the one given, the recipe's (True), or none (False/None)."""
    if isinstance(run_cache, RunCache):
        return run_cache
    return for_recipe(recipe) if run_cache else None


class RunCache:
    def __init__(self, root: str | os.PathLike, verify: str | None = None):
        self.root = Path(root)
        verify = verify or os.environ.get(ENV_VERIFY, "stat").strip().lower() or "stat"
        if verify not in ("stat", "content"):
            verify = "stat"
        self.verify = verify

    def __repr__(self) -> str:
        return f"<RunCache {self.root} verify={self.verify}>"

    def entry_dir(self, fp: str) -> Path:
        return self.root / fp[:2] / fp

    # ------------------------------------------------------------------ lookup

    def lookup(self, fp: str, *, discard: bool = True,
               warn: Callable[[str], None] | None = None) -> CacheEntry | None:
        """The verified entry of ``fp``, or None. An entry that fails verification is deleted
        (unless ``discard`` is False, as ``plan`` does) and reported through ``warn``."""
        d = self.entry_dir(fp)
        if not d.is_dir():
            return None
        meta = _read_meta(d)
        problem = problem_of(d, meta, fp, content=self.verify == "content")
        if problem is None:
            return CacheEntry(d, meta)  # type: ignore[arg-type]
        if warn is not None:
            step = (meta or {}).get("step", "?")
            warn(f"run cache entry {fp[:12]} of step '{step}' is not trusted ({problem}); "
                 + ("deleted, the step runs again" if discard else "the step will run"))
        if discard:
            _discard(d)
        return None

    # ------------------------------------------------------------------ restore

    def restore(self, entry: CacheEntry, out_path: Path) -> None:
        """Materialise ``entry`` at ``out_path`` (atomically replacing it) by hard links/symlinks.

        Raises CacheUnusable (``out_path`` untouched) when links cannot be made or the result does
        not match the entry."""
        try:
            with atomic_dir(out_path) as tmp:
                _replicate(entry.out, tmp, entry.out)
                if not stat_matches(tmp, entry.files):
                    raise CacheUnusable("the restored files differ from the entry's records")
        except OSError as e:
            raise CacheUnusable(f"cannot link from {entry.out} ({e.strerror or e})") from e

    # ------------------------------------------------------------------ store

    def store(self, fp: str, step: str, out_path: Path, lock_entry: dict, origin: dict,
              warn: Callable[[str], None] | None = None) -> Path | None:
        """Put ``out_path`` (just produced, recorded in ``lock_entry``) into the cache under ``fp``.

        Never raises for cache trouble: a failure only means no entry (reported through ``warn``).
        Returns the entry's directory, or None."""
        out = lock_entry["output"]
        if not out_path.is_dir():
            return None  # single-file outputs are not cached
        final = self.entry_dir(fp)
        if self.lookup(fp, warn=warn) is not None:
            return final  # already there (another recipe stored the same output meanwhile)
        meta = {"version": META_VERSION, "fingerprint": fp, "step": step,
                "digest": out["digest"], "files": out["files"],
                "metrics": lock_entry.get("metrics"),
                "duration_s": lock_entry.get("duration_s"),
                "peak_rss_bytes": lock_entry.get("peak_rss_bytes"),
                "finished_at": lock_entry.get("finished_at"),
                "stored_at": _now(), "origin": origin}
        tmp: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            clean_stale_temps(final.parent)
            tmp = _sibling(final, TMP_PREFIX)
            tmp.mkdir()
            (tmp / OUT).mkdir()
            _replicate(out_path, tmp / OUT, out_path)
            if not stat_matches(tmp / OUT, out["files"]):
                raise CacheUnusable(f"{out_path} changed while it was being stored")
            atomic_write_text(tmp / META, json.dumps(meta, indent=1, sort_keys=True) + "\n")
            try:
                os.rename(tmp, final)
            except OSError:
                if final.is_dir():  # a concurrent run stored it first: keep theirs
                    return final
                raise
            tmp = None
            return final
        except (OSError, CacheUnusable) as e:
            if warn is not None:
                why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
                warn(f"step '{step}' output not stored in the run cache {self.root} ({why})")
            return None
        finally:
            if tmp is not None:
                remove_path(tmp)

    # ------------------------------------------------------------------ listing / clearing

    def entries(self) -> list[tuple[Path, dict | None]]:
        """Every entry directory with its meta (None when unreadable), oldest first."""
        out: list[tuple[Path, dict | None]] = []
        if not self.root.is_dir():
            return out
        for shard in sorted(self.root.iterdir()):
            if not shard.is_dir() or shard.name.startswith("."):
                continue
            clean_stale_temps(shard)
            for d in sorted(shard.iterdir()):
                if d.is_dir() and not d.name.startswith((TMP_PREFIX, OLD_PREFIX)):
                    out.append((d, _read_meta(d)))
        out.sort(key=lambda t: ((t[1] or {}).get("stored_at") or "", t[0].name))
        return out

    def check(self, d: Path, meta: dict | None, content: bool = False) -> str | None:
        """Why the entry at ``d`` is not trusted, or None."""
        return problem_of(d, meta, d.name, content=content)

    def clear(self, step: str | None = None) -> tuple[int, int]:
        """Delete every entry (or those of ``step``). Returns (entries, bytes freed on disk).

        Recipe artifacts that hard-link the same files keep them."""
        n = 0
        doomed: list[Path] = []
        for d, meta in self.entries():
            if step is not None and (meta or {}).get("step") != step:
                continue
            doomed.append(d)
        freed = usage(*(d / OUT for d in doomed))[1]
        for d in doomed:
            _discard(d)
            n += 1
        if self.root.is_dir():  # only what the cache made: $OVEXPORT_RUN_CACHE may be any dir
            for shard in self.root.iterdir():
                if shard.is_dir() and len(shard.name) == 2:
                    with contextlib.suppress(OSError):
                        shard.rmdir()  # only when empty
        return n, freed


def problem_of(d: Path, meta: dict | None, fp: str, content: bool = False) -> str | None:
    if meta is None:
        return "meta.json missing or unreadable"
    if meta.get("version") != META_VERSION:
        return f"entry format {meta.get('version')!r}, expected {META_VERSION}"
    files = meta.get("files")
    if meta.get("fingerprint") != fp or not isinstance(files, dict) \
            or not isinstance(meta.get("digest"), str):
        return "meta.json does not describe this fingerprint"
    try:
        if digest_of_files(files) != meta["digest"]:
            return "meta.json's file records do not match its digest"
    except (KeyError, TypeError):
        return "meta.json's file records are malformed"
    if not (d / OUT).is_dir() or not stat_matches(d / OUT, files):
        return "files changed, missing or added since it was stored"
    if content and digest_dir(d / OUT, rehash=True)[0] != meta["digest"]:
        return "file contents do not match the stored digest"
    return None


def usage(*paths: Path) -> tuple[int, int]:
    """(bytes of the files under ``paths``, bytes only they hold: files with no hard link outside
    them, i.e. what deleting them frees). Each inode counts once; symlinked files count 0 (their
    bytes live elsewhere, e.g. in the Hugging Face cache)."""
    links: dict[tuple[int, int], list] = {}  # inode -> [size, nlink, links seen here]
    for path in paths:
        for dirpath, _dirs, names in os.walk(path):
            for n in names:
                try:
                    st = os.lstat(os.path.join(dirpath, n))
                except OSError:
                    continue
                if not _is_regular(st):
                    continue
                rec = links.setdefault((st.st_dev, st.st_ino), [st.st_size, st.st_nlink, 0])
                rec[2] += 1
    total = sum(r[0] for r in links.values())
    only = sum(r[0] for r in links.values() if r[2] >= r[1])
    return total, only


def _is_regular(st: os.stat_result) -> bool:
    import stat as _stat
    return _stat.S_ISREG(st.st_mode)


def _read_meta(d: Path) -> dict | None:
    try:
        meta = json.loads((d / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _discard(d: Path) -> None:
    """Remove an entry: renamed aside first, so it stops being an entry at once."""
    aside = _sibling(d, OLD_PREFIX)
    with contextlib.suppress(OSError):
        os.rename(d, aside)
        d = aside
    with contextlib.suppress(OSError):  # best effort: a leftover is never trusted (no meta / renamed)
        remove_path(d)


def _replicate(src: Path, dst: Path, root: Path) -> None:
    """Re-create the tree ``src`` in the existing empty directory ``dst``: directories made,
    regular files hard-linked (never copied), symlinks re-made to the same target. A relative
    symlink stays relative when it points inside ``root``, else it becomes absolute."""
    with os.scandir(src) as it:
        items = sorted(it, key=lambda e: e.name)
    for e in items:
        s, t = Path(e.path), dst / e.name
        if e.is_symlink():
            target = os.readlink(s)
            if not os.path.isabs(target):
                resolved = os.path.normpath(os.path.join(src, target))
                if os.path.commonpath([resolved, os.path.abspath(root)]) != os.path.abspath(root):
                    target = resolved
            os.symlink(target, t)
        elif e.is_dir(follow_symlinks=False):
            t.mkdir()
            _replicate(s, t, root)
        elif e.is_file(follow_symlinks=False):
            os.link(s, t)
        # sockets, fifos...: not artifact content (digest_dir ignores them too)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
