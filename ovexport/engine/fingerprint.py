"""Fingerprints of step runs and digests of output directories.

A step's *fingerprint* is the sha256 of a canonical JSON document holding everything that can change
its output: the step name, its resolved parameters, the digests of the artifacts it reads, the
versions of the tools it uses, and ``ENGINE_VERSION`` (bumped when the engine changes how it runs
steps, which invalidates every lock).

An output *digest* is the sha256 of the sorted ``relpath -> content hash`` listing of a directory;
the per-file ``size``/``mtime_ns`` recorded next to it let :func:`stat_matches` tell cheaply (no
hashing) whether the directory is still the one that was digested. File contents are hashed with
xxh3-128 (change detection, not security: about 3x faster than sha256 on multi-GB IRs), and a file
already hashed in this process under the same (device, inode, size, mtime) is not read again: the
artifacts of a run hard-link or symlink each other's files, so each byte is read once.
"""
from __future__ import annotations

import enum
import hashlib
import json
import os
from pathlib import Path, PurePath
from typing import Any

ENGINE_VERSION = "1"
CHUNK = 1 << 20  # 1 MiB


def _json_default(obj: Any) -> Any:
    if isinstance(obj, PurePath):
        return obj.as_posix()
    if isinstance(obj, enum.Enum):
        return obj.value
    if hasattr(obj, "model_dump"):  # pydantic models
        return obj.model_dump(mode="json")
    if isinstance(obj, (set, frozenset)):
        return sorted(obj, key=lambda v: canonical_json(v))
    raise TypeError(f"{type(obj).__name__} value {obj!r} is not JSON-serialisable")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, Paths as posix strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_json_default)


def normalise(obj: Any) -> Any:
    """``obj`` as it reads back from canonical JSON (tuples -> lists, Paths -> str...)."""
    return json.loads(canonical_json(obj))


def fingerprint(step_name: str, params: dict, input_digests: dict[str, str], tools: dict) -> str:
    doc = {"engine": ENGINE_VERSION, "step": step_name, "params": params,
           "inputs": input_digests, "tools": tools}
    return hashlib.sha256(canonical_json(doc).encode("utf-8")).hexdigest()


_CONTENT_HASHES: dict[tuple[int, int, int, int], str] = {}


def content_hash(path: str | os.PathLike, st: os.stat_result | None = None,
                 rehash: bool = False) -> str:
    """xxh3-128 of a file's bytes, memoised by (device, inode, size, mtime_ns); ``rehash`` reads
    the bytes again (and updates the memo)."""
    import xxhash

    st = st or os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cached = None if rehash else _CONTENT_HASHES.get(key)
    if cached is None:
        h = xxhash.xxh3_128()
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        cached = _CONTENT_HASHES[key] = "xxh3:" + h.hexdigest()
    return cached


def _walk_files(root: Path) -> list[tuple[str, Path]]:
    """(posix relpath, path) of every regular file under ``root``, following symlinks (to files and
    directories; symlink loops are visited once), sorted by relpath. Dangling symlinks are skipped."""
    out: list[tuple[str, Path]] = []
    seen_dirs: set[tuple[int, int]] = set()

    def visit(d: Path, rel: str) -> None:
        st = d.stat()
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            return
        seen_dirs.add(key)
        with os.scandir(d) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            r = f"{rel}{e.name}"
            try:
                if e.is_dir(follow_symlinks=True):
                    visit(Path(e.path), r + "/")
                elif e.is_file(follow_symlinks=True):
                    out.append((r, Path(e.path)))
            except OSError:
                continue

    visit(Path(root), "")
    out.sort(key=lambda t: t[0])
    return out


def digest_dir(path: str | os.PathLike, rehash: bool = False) -> tuple[str, dict[str, dict]]:
    """Digest of a directory (or of a single file) and its per-file records.

    Returns ``(digest, files)`` with ``files = {relpath: {"size", "mtime_ns", "hash"}}`` in sorted
    order. Symlinks are followed, so an artifact made of links into a cache digests like a copy.
    ``rehash`` reads every file again instead of trusting this process's memo.
    """
    root = Path(path)
    if root.is_file():
        items = [(root.name, root)]
    else:
        items = _walk_files(root)
    files: dict[str, dict] = {}
    for rel, p in items:
        st = p.stat()
        files[rel] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": content_hash(p, st, rehash)}
    return digest_of_files(files), files


def digest_of_files(files: dict[str, dict]) -> str:
    """The directory digest of per-file records as :func:`digest_dir` returns them (relpath and
    content hash only: the same bytes under the same names give the same digest wherever they are)."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel]['hash']}\n".encode("utf-8"))
    return h.hexdigest()


def stat_matches(path: str | os.PathLike, files: dict[str, dict]) -> bool:
    """True when ``path`` holds exactly the recorded files with the recorded sizes and mtimes
    (no hashing). Any missing, extra, resized or touched file makes it False."""
    root = Path(path)
    try:
        if root.is_file():
            items = [(root.name, root)]
        elif root.is_dir():
            items = _walk_files(root)
        else:
            return False
        if [rel for rel, _ in items] != sorted(files):
            return False
        for rel, p in items:
            st = p.stat()
            rec = files[rel]
            if st.st_size != rec.get("size") or st.st_mtime_ns != rec.get("mtime_ns"):
                return False
    except OSError:
        return False
    return True
