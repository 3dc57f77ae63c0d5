"""Run the steps of a recipe in order (DVC-like).

* A step is skipped when it is up to date (``freshness.py``: the lock holds the same fingerprint and its
  output is still the directory that was digested). Outputs are written into a temporary directory renamed
  into place on success; the lock is saved after each step, so an interrupted run resumes where it stopped.
  A step is removed from the lock *before* it reruns, so a step killed mid-way leaves nothing a later run
  trusts.
* ``force`` reruns steps even when up to date; their downstream steps rerun only if the new output
  digest differs (their fingerprints include the input digests).
* ``Step.isolate`` steps run in a fresh subprocess (``isolation.py``: memory isolation, exact peak RSS);
  the others in this process, measured by ``peak_rss.PeakMeter``.
* A step that is not up to date but whose fingerprint is in the run cache (``run_cache.py``: shared
  by every recipe with the same output root) is not run: its output is restored by hard links
  (status "cached"). A step that runs stores its output there. ``run_cache=False`` disables both.

``plan()`` (``planner.py``) tells what ``run()`` would do without running anything.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from rich.console import Console
from rich.text import Text

from ..errors import OvexportError
from .atomic import atomic_dir, clean_stale_temps
from .fingerprint import digest_dir
from .freshness import Freshness, cache_note, freshness, resolve
from .isolation import run_isolated, warm_up
from .lock import LOCK_NAME, Lock
from .peak_rss import PeakMeter
from .planner import check_selection, validate
from .report import format_bytes, format_duration
from .run_cache import CacheEntry, CacheUnusable, RunCache, chosen
from .step import REGISTRY, Step, StepContext, StepRegistry, checked_metrics, work_dir

RUN_LOCK_NAME = ".ovexport-run.lock"


@dataclass
class RunRow:
    name: str
    status: str  # "ran" | "cached" (restored from the run cache) | "up to date"
    duration_s: float | None  # None when up to date; the restore time when cached
    peak_rss_bytes: int | None  # None when up to date or cached
    metrics: dict | None
    reason: str = ""  # why it ran ("forced", "params changed: bits", ...) or where it came from
    produces: str = ""
    output: Path | None = None
    fingerprint: str = ""


@dataclass
class RunResult:
    rows: list[RunRow] = field(default_factory=list)
    artifacts: dict[str, Path] = field(default_factory=dict)
    work: Path | None = None
    lock_path: Path | None = None
    run_cache: Path | None = None  # None when disabled

    def row(self, name: str) -> RunRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def run(recipe: Any, registry: StepRegistry = REGISTRY, force: Iterable[str] = (),
        until: str | None = None, console: Console | None = None,
        run_cache: "RunCache | bool | None" = True) -> RunResult:
    """Run the recipe's steps in order (see module docstring). Raises the step's exception on
    failure, after removing its temporary output and leaving its lock entry absent.

    ``run_cache``: True = the run cache of the recipe's output root (or ``$OVEXPORT_RUN_CACHE``),
    a :class:`RunCache` = that one, False/None = none. Forced steps always run."""
    console = console or Console()
    steps = validate(recipe, registry)
    forced = check_selection(recipe, force, until)
    work = work_dir(recipe)
    work.mkdir(parents=True, exist_ok=True)
    cache = chosen(run_cache, recipe)
    result = RunResult(work=work, lock_path=work / LOCK_NAME,
                       run_cache=cache.root if cache is not None else None)

    def warn(msg: str) -> None:
        console.print(Text(f"warning: {msg}", style="yellow"))
    with _exclusive(work, recipe):
        isolated = [s for s in steps if s.isolate]
        if isolated:
            warm_up(isolated[0])
        for d in {work, *(s.output_path(recipe, work).parent for s in steps)}:
            clean_stale_temps(d)
        lock = Lock.for_work(work)
        if lock.warning:
            warn(lock.warning)
            lock.set_aside_corrupt()
        digests: dict[str, str] = {}
        for s in steps:
            inputs = {a: result.artifacts[a] for a in (*s.consumes, *s.optional)
                      if a in result.artifacts}
            params, tools = resolve(s, recipe)
            f = freshness(s, recipe, work, lock, {a: digests[a] for a in inputs}, params, tools,
                          s.name in forced)
            done = _bring_up_to_date(s, f, recipe, inputs, work, lock, cache, console, warn)
            digests[s.produces] = done.digest
            result.rows.append(done.row)
            result.artifacts[s.produces] = f.out_path
            if s.name == until:
                break
    return result


@dataclass
class _Done:
    row: RunRow
    digest: str


def _bring_up_to_date(s: Step, f: Freshness, recipe: Any, inputs: dict[str, Path], work: Path, lock: Lock,
                      cache: RunCache | None, console: Console, warn: Callable[[str], None]) -> _Done:
    """Skip the step (up to date), restore it from the run cache, or run it (and store it there)."""
    if f.up_to_date:
        console.print(Text.assemble("= ", (s.name, "bold"), (" up to date", "dim")))
        return _Done(RunRow(s.name, "up to date", None, None, f.entry.get("metrics"),  # type: ignore[union-attr]
                            "", s.produces, f.out_path, f.fingerprint), f.digest)
    hit = cache.lookup(f.fingerprint, warn=warn) if cache is not None and f.may_restore else None
    if hit is not None:
        restored = _restore(s, f, cache, hit, work, lock, console, warn)  # type: ignore[arg-type]
        if restored is not None:
            entry, took = restored
            return _Done(RunRow(s.name, "cached", took, None, entry["metrics"], cache_note(hit), s.produces,
                                f.out_path, f.fingerprint), entry["output"]["digest"])
    entry = _execute(s, f, recipe, inputs, work, lock, console)
    if cache is not None and s.run_cache:
        cache.store(f.fingerprint, s.name, f.out_path, entry,
                    {"recipe": getattr(recipe, "name", None), "output": str(f.out_path)}, warn=warn)
    return _Done(RunRow(s.name, "ran", entry["duration_s"], entry["peak_rss_bytes"], entry["metrics"],
                        f.reason, s.produces, f.out_path, f.fingerprint), entry["output"]["digest"])


def _lock_entry(f: Freshness, work: Path, digest: str, files: dict, **record: Any) -> dict:
    """What the lock records of a step that ran or was restored: its fingerprint and what went into it."""
    return {"fingerprint": f.fingerprint, "params": f.params, "inputs": f.inputs, "tools": f.tools,
            "output": {"path": os.path.relpath(f.out_path, work), "digest": digest, "files": files},
            **record}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _execute(s: Step, f: Freshness, recipe: Any, inputs: dict[str, Path], work: Path, lock: Lock,
             console: Console) -> dict:
    console.print(Text.assemble("▶ ", (s.name, "bold"), (f"  ({f.reason})" if f.reason else "", "dim")))
    if lock.remove(s.name) or lock.warning:
        lock.save()  # from here on, nothing trusts the old output of this step
    t0 = time.monotonic()
    try:
        with atomic_dir(f.out_path) as tmp:
            if s.isolate:
                metrics, peak = run_isolated(s, recipe, inputs, tmp, work, console)
            else:
                ctx = StepContext(recipe=recipe, inputs=dict(inputs), out=tmp, work=work,
                                  console=console, step_name=s.name)
                with PeakMeter() as meter, ctx.capture_warnings():
                    metrics = s.run(ctx)
                metrics, peak = checked_metrics(s.name, metrics), meter.peak
            digest, files = digest_dir(tmp)
    except BaseException as e:
        what = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        console.print(Text.assemble("✗ ", (s.name, "bold"),
                                    f"  {what} after {format_duration(time.monotonic() - t0)}"),
                      style="red")
        raise
    duration = time.monotonic() - t0
    entry = _lock_entry(f, work, digest, files, metrics=metrics, finished_at=_now(),
                        duration_s=round(duration, 3), peak_rss_bytes=peak)
    lock.set(s.name, entry)
    lock.save()
    console.print(Text.assemble("✓ ", (s.name, "bold"),
                                f"  {format_duration(duration)}  {format_bytes(peak)}"))
    return entry


def _restore(s: Step, f: Freshness, cache: RunCache, hit: CacheEntry, work: Path, lock: Lock,
             console: Console, warn: Callable[[str], None]) -> tuple[dict, float] | None:
    """Materialise a run-cache entry as the step's output and record it in the lock, as if the
    step had run (same fingerprint, digest and metrics). None when it cannot be restored."""
    if lock.remove(s.name) or lock.warning:
        lock.save()  # as in _execute: nothing trusts the old output from here on
    t0 = time.monotonic()
    try:
        cache.restore(hit, f.out_path)
    except CacheUnusable as e:
        warn(f"cannot restore step '{s.name}' from the run cache ({e}); running it")
        return None
    took = time.monotonic() - t0
    meta = hit.meta
    entry = _lock_entry(f, work, hit.digest, hit.files, metrics=meta.get("metrics"),
                        finished_at=meta.get("finished_at"), duration_s=meta.get("duration_s"),
                        peak_rss_bytes=meta.get("peak_rss_bytes"),
                        run_cache={"entry": str(hit.path), "origin": hit.origin, "restored_at": _now(),
                                   "restore_s": round(took, 3)})
    lock.set(s.name, entry)
    lock.save()
    console.print(Text.assemble("↺ ", (s.name, "bold"),
                                (f"  {cache_note(hit)}; restored in {format_duration(took)}", "dim")))
    return entry, took


@contextlib.contextmanager
def _exclusive(work: Path, recipe: Any):
    """One run per work directory at a time (advisory flock, released when the run ends)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process protection
        yield
        return
    f = open(work / RUN_LOCK_NAME, "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OvexportError(f"another ovexport run is building recipe '{recipe.name}' "
                                f"(in {work})", fix="wait for it to finish or stop it") from None
        yield
    finally:
        f.close()
