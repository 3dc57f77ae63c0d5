"""A store of reference outputs keyed by fingerprint, computed once and read many times.

As llama.cpp's ``--kl-divergence-base`` file and who_what_benchmark's ground-truth file: the expensive side
of a comparison (PyTorch on the full-size model) is computed once per (checkpoint, inputs, settings) and
every later variant reads it. ``compare`` keeps per-question answers and log-probabilities here, and the
``validate`` step keeps each check's PyTorch outputs, so validating a second variant of one checkpoint skips
PyTorch altogether.

An entry is a directory ``<root>/<key[:2]>/<key>/`` holding ``arrays.npz`` (numpy arrays) and ``meta.json``
(JSON values and the key document), written into a temporary sibling and renamed into place: a killed
writer leaves no entry. The key is the sha256 of the canonical JSON of what decides the outputs, with the
versions of the libraries that compute them (an upgrade of torch, transformers or OpenVINO is a new entry,
never a stale one).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ovexport.engine.code_digest import versions
from ovexport.engine.fingerprint import canonical_json

ENV = "OVEXPORT_REFERENCE_CACHE"
FORMAT = 1
# what computes a reference (PyTorch side, IR side and tokenizers): part of every key
LIBRARIES = ("torch", "transformers", "timm", "openvino", "openvino_tokenizers", "numpy", "sentencepiece")


def default_root(output_root: Path | str | None = None) -> Path:
    """``$OVEXPORT_REFERENCE_CACHE``, else ``<output_root>/.work/.reference``, else ``~/.cache/ovexport/reference``."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    if output_root is not None:
        return Path(os.path.abspath(Path(output_root).expanduser())) / ".work" / ".reference"
    return Path.home() / ".cache" / "ovexport" / "reference"


def cache_key(doc: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json({"format": FORMAT, "libraries": versions(*LIBRARIES), **doc}).encode()
                          ).hexdigest()


_LIST = "#"   # a list of arrays ``k`` is stored as arrays ``k#0``, ``k#1``... and its length in meta


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _split(values: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays, meta, lists = {}, {}, {}
    for k, v in values.items():
        if _LIST in k:
            raise ValueError(f"reference value name {k!r} may not contain {_LIST!r}")
        if isinstance(v, np.ndarray):
            arrays[k] = v
        elif isinstance(v, (list, tuple)) and v and all(isinstance(x, np.ndarray) for x in v):
            lists[k] = len(v)
            arrays.update({f"{k}{_LIST}{i}": x for i, x in enumerate(v)})
        else:
            meta[k] = _plain(v)
    return arrays, {"values": meta, "lists": lists}


def _join(arrays: dict[str, np.ndarray], meta: dict) -> dict[str, Any]:
    out: dict[str, Any] = dict(meta.get("values", {}))
    for k, n in meta.get("lists", {}).items():
        out[k] = [arrays.pop(f"{k}{_LIST}{i}") for i in range(n)]
    out.update(arrays)
    return out


class ReferenceCache:
    """``cache.get_or_compute(doc, compute)``: ``compute()`` returns a flat dict of numpy arrays and JSON
    values; it runs only when no entry for ``doc`` exists. ``hits``/``misses`` count lookups."""

    def __init__(self, root: Path | str | None, enabled: bool = True):
        self.root = Path(root) if root is not None else None
        self.enabled = enabled and root is not None
        self.hits = 0
        self.misses = 0
        self.compute_peak_rss_bytes: int | None = None   # of a reference computed in its own process

    def path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / key

    def get(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        d = self.path(cache_key(doc))
        try:
            meta = json.loads((d / "meta.json").read_text())
            with np.load(d / "arrays.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None                                  # missing or damaged: recompute
        return _join(arrays, meta)

    def put(self, doc: Mapping[str, Any], values: Mapping[str, Any]) -> Path | None:
        if not self.enabled:
            return None
        key = cache_key(doc)
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        arrays, meta = _split(values)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=final.parent))
        try:
            np.savez(tmp / "arrays.npz", **arrays)
            (tmp / "meta.json").write_text(json.dumps({"key": json.loads(canonical_json(doc)), **meta},
                                                      ensure_ascii=False))
            if final.exists():                           # another writer won the race: keep theirs
                shutil.rmtree(tmp)
            else:
                os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def get_or_compute(self, doc: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        found = self.get(doc)
        if found is not None:
            self.hits += 1
            return found
        self.misses += 1
        values = dict(compute())
        self.put(doc, values)
        return values

    def size_bytes(self) -> int:
        if self.root is None or not self.root.is_dir():
            return 0
        return sum(f.stat().st_size for f in self.root.rglob("*") if f.is_file())
