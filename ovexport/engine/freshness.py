"""Whether a step is up to date: the one decision ``plan()`` and ``run()`` share.

A step is up to date when the lock holds the same fingerprint (step name, params, input digests, tool
versions, engine version) and its output is still the directory that was digested (sizes + mtimes). A
forced step never is. A step that is not up to date (and not forced, and shareable) may be restored from
the run cache instead of running.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fingerprint import fingerprint, normalise, stat_matches
from .lock import Lock
from .report import format_duration
from .run_cache import CacheEntry
from .step import Step


@dataclass
class Freshness:
    step: Step
    fingerprint: str
    params: dict
    tools: dict
    inputs: dict[str, str]      # artifact -> digest of each input the step reads
    out_path: Path
    entry: dict | None          # the lock's record of the step (None: never ran, or lock unreadable)
    forced: bool
    up_to_date: bool
    reason: str                 # why it is not up to date ("forced", "params changed: bits", ...); "" when it is

    @property
    def digest(self) -> str:
        """The output digest the lock recorded (only meaningful when up to date)."""
        return self.entry["output"]["digest"]  # type: ignore[index]

    @property
    def may_restore(self) -> bool:
        """Not up to date, yet a run-cache entry with this fingerprint may stand in for running it."""
        return not self.up_to_date and not self.forced and self.step.run_cache


def resolve(step: Step, recipe: Any) -> tuple[dict, dict]:
    """The step's params and tool versions as they read back from the lock (OvexportError passes through)."""
    try:
        params = normalise(step.params(recipe))
        tools = normalise(step.tool_versions())
    except (TypeError, ValueError) as e:
        raise TypeError(f"step '{step.name}': params/tool_versions must be JSON-serialisable "
                        f"({e})") from e
    return params, tools


def freshness(step: Step, recipe: Any, work: Path, lock: Lock, inputs: dict[str, str], params: dict,
              tools: dict, forced: bool) -> Freshness:
    """Is ``step`` (with resolved ``params``/``tools``, reading ``inputs``' digests) up to date in ``lock``?"""
    fp = fingerprint(step.name, params, inputs, tools)
    out_path = step.output_path(recipe, work)
    entry = lock.get(step.name)
    if forced:
        ok, reason = False, "forced"
    else:
        ok, reason = _check_entry(entry, fp, params, inputs, tools, out_path, work, lock)
    return Freshness(step, fp, params, tools, inputs, out_path, entry, forced, ok, reason)


def cache_note(hit: CacheEntry) -> str:
    """Where a run-cache entry came from: "from run cache: recipe 'x', ran in 3.2 s"."""
    o = hit.origin
    who = f"recipe '{o['recipe']}'" if o.get("recipe") else str(hit.path)
    took = hit.meta.get("duration_s")
    return f"from run cache: {who}" + (f", ran in {format_duration(took)}" if took is not None
                                        else "")


def _check_entry(entry: dict | None, fp: str, params: dict, inputs: dict, tools: dict,
                 out_path: Path, work: Path, lock: Lock) -> tuple[bool, str]:
    """(up to date?, reason it is not)."""
    if entry is None:
        return False, "lock file unreadable" if lock.warning else "never ran"
    if entry.get("fingerprint") != fp:
        return False, _why_fingerprint_changed(entry, params, inputs, tools)
    out = entry["output"]
    if os.path.normpath(out["path"]) != os.path.normpath(os.path.relpath(out_path, work)):
        return False, "output location changed"
    if not (out_path.exists() or out_path.is_symlink()):
        return False, "output missing"
    if not stat_matches(out_path, out["files"]):
        return False, "output changed on disk"
    return True, ""


def _diff_keys(old: Any, new: Any) -> list[str]:
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    missing = object()
    return sorted(k for k in set(old) | set(new) if old.get(k, missing) != new.get(k, missing))


def _why_fingerprint_changed(entry: dict, params: dict, inputs: dict, tools: dict) -> str:
    parts = []
    if entry.get("params") != params:
        keys = _diff_keys(entry.get("params"), params)
        parts.append("params changed" + (": " + ", ".join(keys[:6]) if keys else ""))
    if entry.get("inputs") != inputs:
        keys = _diff_keys(entry.get("inputs"), inputs)
        parts.append("input changed" + (": " + ", ".join(keys) if keys else ""))
    if entry.get("tools") != tools:
        old = entry.get("tools") or {}
        keys = _diff_keys(old, tools)
        parts.append("tool versions changed: " + ", ".join(
            f"{k} {old.get(k, '-')} -> {tools.get(k, '-')}" for k in keys))
    return "; ".join(parts) or "engine version changed"
