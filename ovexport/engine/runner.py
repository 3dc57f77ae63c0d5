"""Plan and run the steps of a recipe (DVC-like).

* ``plan()`` checks that every artifact a step needs is produced by an earlier step, then tells for
  each step whether it is up to date, will run, or is blocked.
* ``run()`` executes the steps in recipe order. A step is skipped when the lock holds the same
  fingerprint (step name, params, input digests, tool versions, engine version) and its output is
  still the directory that was digested (sizes + mtimes). Outputs are written into a temporary
  directory renamed into place on success; the lock is saved after each step, so an interrupted run
  resumes where it stopped. A step is removed from the lock *before* it reruns, so a step killed
  mid-way leaves nothing a later run trusts.
* ``force`` reruns steps even when up to date; their downstream steps rerun only if the new output
  digest differs (their fingerprints include the input digests).
* ``Step.isolate`` steps run in a fresh ``spawn`` subprocess (memory isolation, exact peak RSS).
* A step that is not up to date but whose fingerprint is in the run cache (``run_cache.py``: shared
  by every recipe with the same output root) is not run: its output is restored by hard links
  (status "cached"). A step that runs stores its output there. ``run_cache=False`` disables both.

Peak memory (``peak_rss_bytes``):
* isolated steps: the child's ``VmHWM`` from ``/proc/self/status`` (peak RSS of the child's own
  address space). ``ru_maxrss`` is *not* used on Linux because a spawned child inherits the parent's
  high-water mark across fork+exec (measured: an 800 MB parent made an idle child report 850 MB).
  Elsewhere ``ru_maxrss`` is the fallback.
* in-process steps: the process-wide high-water mark after resetting it at step start
  (``/proc/self/clear_refs`` ← ``5``, then ``VmHWM``), so it includes what the process held before
  the step; where that is unavailable, the max of a psutil RSS sampling thread (every 50 ms).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import importlib.util
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.text import Text

from ..errors import OvexportError, PlanError
from .atomic import atomic_dir, clean_stale_temps
from .fingerprint import digest_dir, fingerprint, normalise, stat_matches
from .lock import LOCK_NAME, Lock
from .run_cache import CacheEntry, CacheUnusable, RunCache, for_recipe
from .report import format_bytes, format_duration
from .step import REGISTRY, Step, StepContext, StepRegistry, all_steps

RUN_LOCK_NAME = ".ovexport-run.lock"


class LockWarning(UserWarning):
    """The lock file was unreadable and is ignored (every step reruns)."""


@dataclass
class PlanRow:
    name: str
    produces: str
    consumes: tuple[str, ...]
    status: str  # "up to date" | "cached" (in the run cache) | "will run" | "blocked"
    fingerprint: str | None
    reason: str


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


def work_dir(recipe: Any) -> Path:
    """``<output.root>/.work/<recipe.name>`` as an absolute path."""
    return Path(os.path.abspath(Path(recipe.output.root).expanduser())) / ".work" / recipe.name


# --------------------------------------------------------------------------- validation

def validate(recipe: Any, registry: StepRegistry = REGISTRY) -> list[Step]:
    """Step instances of ``recipe.steps``; PlanError if they cannot run in this order."""
    names = list(recipe.steps)
    if not names:
        raise PlanError(f"recipe '{recipe.name}' has no steps",
                        fix=f"list steps among: {', '.join(registry.names()) or 'none'}")
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise PlanError(f"step '{n}' is listed twice in steps", fix=f"keep one '{n}'")
        seen.add(n)
    steps = [registry.get(n) for n in names]
    in_recipe: dict[str, str] = {}
    for s in steps:
        if s.produces in in_recipe:
            raise PlanError(f"steps '{in_recipe[s.produces]}' and '{s.name}' both produce artifact "
                            f"'{s.produces}'", fix="keep only one of them in steps")
        in_recipe[s.produces] = s.name
    produced: set[str] = set()
    for s in steps:
        for a in s.consumes:
            if a in produced:
                continue
            if a in in_recipe and in_recipe[a] != s.name:
                fix = f"move '{in_recipe[a]}' before '{s.name}' in steps"
            else:
                cands = [c for c in registry.producers_of(a) if c != s.name]
                fix = (f"add {' or '.join(repr(c) for c in cands)} before '{s.name}' in steps"
                       if cands else f"no registered step produces '{a}'")
            raise PlanError(f"step '{s.name}' needs artifact '{a}', which no earlier step "
                            f"produces", fix=fix)
        for a in s.optional:
            if a not in produced and a in in_recipe and in_recipe[a] != s.name:
                raise PlanError(f"step '{s.name}' uses artifact '{a}', but '{in_recipe[a]}' which "
                                f"produces it comes after it",
                                fix=f"move '{in_recipe[a]}' before '{s.name}' in steps")
        produced.add(s.produces)
    return steps


def _check_selection(recipe: Any, force: Iterable[str], until: str | None) -> set[str]:
    names = list(recipe.steps)
    known = ", ".join(names)
    if until is not None and until not in names:
        raise PlanError(f"--until '{until}' is not a step of recipe '{recipe.name}'",
                        fix=f"use one of: {known}")
    force = set(force or ())
    for f in sorted(force):
        if f not in names:
            raise PlanError(f"--force '{f}' is not a step of recipe '{recipe.name}'",
                            fix=f"use one of: {known}")
    return force


# --------------------------------------------------------------------------- up-to-date check

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


def _cache_of(run_cache: "RunCache | bool | None", recipe: Any) -> RunCache | None:
    if isinstance(run_cache, RunCache):
        return run_cache
    return for_recipe(recipe) if run_cache else None


def _cache_note(hit: CacheEntry) -> str:
    o = hit.origin
    who = f"recipe '{o['recipe']}'" if o.get("recipe") else str(hit.path)
    took = hit.meta.get("duration_s")
    return f"from run cache: {who}" + (f", ran in {format_duration(took)}" if took is not None
                                        else "")


def _resolve(step: Step, recipe: Any) -> tuple[dict, dict]:
    try:
        params = normalise(step.params(recipe))
        tools = normalise(step.tool_versions())
    except (TypeError, ValueError) as e:
        raise TypeError(f"step '{step.name}': params/tool_versions must be JSON-serialisable "
                        f"({e})") from e
    return params, tools


# --------------------------------------------------------------------------- plan

def plan(recipe: Any, registry: StepRegistry = REGISTRY, *, force: Iterable[str] = (),
         until: str | None = None, console: Console | None = None,
         run_cache: "RunCache | bool | None" = True) -> list[PlanRow]:
    """What ``run()`` with the same arguments would do, without running anything.

    Steps after ``until`` are not listed. A step whose params()/tool_versions() raises an
    OvexportError is "blocked" (reason: the error), and so are the steps that need its artifact.
    """
    steps = validate(recipe, registry)
    forced = _check_selection(recipe, force, until)
    work = work_dir(recipe)
    lock = Lock.for_work(work)
    if lock.warning:
        if console is not None:
            console.print(Text(f"warning: {lock.warning}", style="yellow"))
        else:
            warnings.warn(lock.warning, LockWarning, stacklevel=2)
    cache = _cache_of(run_cache, recipe)
    producer: dict[str, str] = {}
    digests: dict[str, str | None] = {}  # None: produced by a step that will run
    blocked: set[str] = set()
    rows: list[PlanRow] = []
    for s in steps:
        used = [a for a in (*s.consumes, *s.optional) if a in producer]
        row = PlanRow(s.name, s.produces, tuple(s.consumes), "will run", None, "")
        rows.append(row)
        producer[s.produces] = s.name
        bad = [a for a in used if a in blocked]
        if bad:
            row.status, row.reason = "blocked", f"needs '{bad[0]}' from blocked step " \
                                                f"'{producer[bad[0]]}'"
            blocked.add(s.produces)
        else:
            try:
                params, tools = _resolve(s, recipe)
            except OvexportError as e:
                row.status, row.reason = "blocked", e.line()
                blocked.add(s.produces)
            else:
                pending = [a for a in used if digests[a] is None]
                if pending:
                    row.reason = f"after '{producer[pending[0]]}' (rechecked then)"
                    digests[s.produces] = None
                else:
                    inputs = {a: digests[a] for a in used}
                    row.fingerprint = fingerprint(s.name, params, inputs, tools)
                    out_path = s.output_path(recipe, work)
                    entry = lock.get(s.name)
                    if s.name in forced:
                        ok, row.reason = False, "forced"
                    else:
                        ok, row.reason = _check_entry(entry, row.fingerprint, params, inputs,
                                                      tools, out_path, work, lock)
                    hit = None
                    if not ok and cache is not None and s.run_cache and s.name not in forced:
                        hit = cache.lookup(row.fingerprint, discard=False)
                    if ok:
                        row.status = "up to date"
                        digests[s.produces] = entry["output"]["digest"]
                    elif hit is not None:
                        row.status, row.reason = "cached", f"{row.reason}; {_cache_note(hit)}"
                        digests[s.produces] = hit.digest
                    else:
                        digests[s.produces] = None
        if s.name == until:
            break
    return rows


# --------------------------------------------------------------------------- run

def run(recipe: Any, registry: StepRegistry = REGISTRY, force: Iterable[str] = (),
        until: str | None = None, console: Console | None = None,
        run_cache: "RunCache | bool | None" = True) -> RunResult:
    """Run the recipe's steps in order (see module docstring). Raises the step's exception on
    failure, after removing its temporary output and leaving its lock entry absent.

    ``run_cache``: True = the run cache of the recipe's output root (or ``$OVEXPORT_RUN_CACHE``),
    a :class:`RunCache` = that one, False/None = none. Forced steps always run."""
    console = console or Console()
    steps = validate(recipe, registry)
    forced = _check_selection(recipe, force, until)
    work = work_dir(recipe)
    work.mkdir(parents=True, exist_ok=True)
    cache = _cache_of(run_cache, recipe)
    result = RunResult(work=work, lock_path=work / LOCK_NAME,
                       run_cache=cache.root if cache is not None else None)

    def warn(msg: str) -> None:
        console.print(Text(f"warning: {msg}", style="yellow"))
    with _exclusive(work, recipe):
        for d in {work, *(s.output_path(recipe, work).parent for s in steps)}:
            clean_stale_temps(d)
        lock = Lock.for_work(work)
        if lock.warning:
            console.print(Text(f"warning: {lock.warning}", style="yellow"))
            lock.set_aside_corrupt()
        digests: dict[str, str] = {}
        for s in steps:
            inputs = {a: result.artifacts[a] for a in (*s.consumes, *s.optional)
                      if a in result.artifacts}
            in_digests = {a: digests[a] for a in inputs}
            params, tools = _resolve(s, recipe)
            fp = fingerprint(s.name, params, in_digests, tools)
            out_path = s.output_path(recipe, work)
            entry = lock.get(s.name)
            if s.name in forced:
                ok, reason = False, "forced"
            else:
                ok, reason = _check_entry(entry, fp, params, in_digests, tools, out_path, work,
                                          lock)
            if ok:
                console.print(Text.assemble("= ", (s.name, "bold"), (" up to date", "dim")))
                digests[s.produces] = entry["output"]["digest"]
                result.rows.append(RunRow(s.name, "up to date", None, None, entry.get("metrics"),
                                          "", s.produces, out_path, fp))
            else:
                use_cache = cache is not None and s.run_cache and s.name not in forced
                hit = cache.lookup(fp, warn=warn) if use_cache else None
                restored = None
                if hit is not None:
                    restored = _restore(s, cache, hit, params, in_digests, tools, fp,
                                        out_path, work, lock, console, warn)
                if restored is not None:
                    entry, took = restored
                    digests[s.produces] = entry["output"]["digest"]
                    result.rows.append(RunRow(s.name, "cached", took, None, entry["metrics"],
                                              _cache_note(hit), s.produces, out_path, fp))
                else:
                    entry = _execute(s, recipe, inputs, in_digests, params, tools, fp, out_path,
                                     work, lock, reason, console)
                    digests[s.produces] = entry["output"]["digest"]
                    result.rows.append(RunRow(s.name, "ran", entry["duration_s"],
                                              entry["peak_rss_bytes"], entry["metrics"], reason,
                                              s.produces, out_path, fp))
                    if cache is not None and s.run_cache:
                        cache.store(fp, s.name, out_path, entry,
                                    {"recipe": getattr(recipe, "name", None),
                                     "output": str(out_path)}, warn=warn)
            result.artifacts[s.produces] = out_path
            if s.name == until:
                break
    return result


def _execute(s: Step, recipe: Any, inputs: dict[str, Path], in_digests: dict[str, str],
             params: dict, tools: dict, fp: str, out_path: Path, work: Path, lock: Lock,
             reason: str, console: Console) -> dict:
    console.print(Text.assemble("▶ ", (s.name, "bold"), (f"  ({reason})" if reason else "", "dim")))
    if lock.remove(s.name) or lock.warning:
        lock.save()  # from here on, nothing trusts the old output of this step
    t0 = time.monotonic()
    try:
        with atomic_dir(out_path) as tmp:
            if s.isolate:
                metrics, peak = _run_isolated(s, recipe, inputs, tmp, work, console)
            else:
                ctx = StepContext(recipe=recipe, inputs=dict(inputs), out=tmp, work=work,
                                  console=console, step_name=s.name)
                with _PeakMeter() as meter, ctx.capture_warnings():
                    metrics = s.run(ctx)
                metrics, peak = _check_metrics(s.name, metrics), meter.peak
            digest, files = digest_dir(tmp)
    except BaseException as e:
        what = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        console.print(Text.assemble("✗ ", (s.name, "bold"),
                                    f"  {what} after {format_duration(time.monotonic() - t0)}"),
                      style="red")
        raise
    duration = time.monotonic() - t0
    entry = {
        "fingerprint": fp,
        "params": params,
        "inputs": in_digests,
        "tools": tools,
        "output": {"path": os.path.relpath(out_path, work), "digest": digest, "files": files},
        "metrics": metrics,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": round(duration, 3),
        "peak_rss_bytes": peak,
    }
    lock.set(s.name, entry)
    lock.save()
    console.print(Text.assemble("✓ ", (s.name, "bold"),
                                f"  {format_duration(duration)}  {format_bytes(peak)}"))
    return entry


def _restore(s: Step, cache: RunCache, hit: CacheEntry, params: dict,
             in_digests: dict[str, str], tools: dict, fp: str, out_path: Path, work: Path,
             lock: Lock, console: Console, warn: Any) -> tuple[dict, float] | None:
    """Materialise a run-cache entry as the step's output and record it in the lock, as if the
    step had run (same fingerprint, digest and metrics). None when it cannot be restored."""
    if lock.remove(s.name) or lock.warning:
        lock.save()  # as in _execute: nothing trusts the old output from here on
    t0 = time.monotonic()
    try:
        cache.restore(hit, out_path)
    except CacheUnusable as e:
        warn(f"cannot restore step '{s.name}' from the run cache ({e}); running it")
        return None
    took = time.monotonic() - t0
    meta = hit.meta
    entry = {
        "fingerprint": fp,
        "params": params,
        "inputs": in_digests,
        "tools": tools,
        "output": {"path": os.path.relpath(out_path, work), "digest": hit.digest,
                   "files": hit.files},
        "metrics": meta.get("metrics"),
        "finished_at": meta.get("finished_at"),
        "duration_s": meta.get("duration_s"),
        "peak_rss_bytes": meta.get("peak_rss_bytes"),
        "run_cache": {"entry": str(hit.path), "origin": hit.origin,
                      "restored_at": _dt.datetime.now(_dt.timezone.utc).isoformat(
                          timespec="seconds"),
                      "restore_s": round(took, 3)},
    }
    lock.set(s.name, entry)
    lock.save()
    console.print(Text.assemble("↺ ", (s.name, "bold"),
                                (f"  {_cache_note(hit)}; restored in {format_duration(took)}",
                                 "dim")))
    return entry, took


def _check_metrics(name: str, metrics: Any) -> dict | None:
    if metrics is None:
        return None
    if not isinstance(metrics, dict):
        raise TypeError(f"step '{name}' returned {type(metrics).__name__}, expected a dict of "
                        f"metrics or None")
    try:
        return normalise(metrics)
    except (TypeError, ValueError) as e:
        raise TypeError(f"step '{name}' returned metrics that are not JSON-serialisable "
                        f"({e})") from e


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


# --------------------------------------------------------------------------- memory

def _vm_hwm() -> int | None:
    """Peak RSS of this process's address space (Linux), bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_rss_self() -> int:
    hwm = _vm_hwm()
    if hwm is not None:
        return hwm
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


class _PeakMeter:
    """Peak RSS of this process while the block runs (see module docstring)."""

    interval = 0.05

    def __init__(self, force_sampling: bool = False):
        self.force_sampling = force_sampling
        self.peak: int = 0
        self.mode = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "_PeakMeter":
        if not self.force_sampling and _vm_hwm() is not None:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")  # reset VmHWM to the current RSS
                self.mode = "hwm"
                return self
            except OSError:
                pass
        import psutil
        self.mode = "sample"
        proc = psutil.Process()
        self.peak = proc.memory_info().rss

        def sample() -> None:
            while not self._stop.wait(self.interval):
                self.peak = max(self.peak, proc.memory_info().rss)

        self._thread = threading.Thread(target=sample, name="ovexport-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.mode == "hwm":
            self.peak = _vm_hwm() or 0
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        import psutil
        self.peak = max(self.peak, psutil.Process().memory_info().rss)


# --------------------------------------------------------------------------- isolation

def _console_options(console: Console) -> dict:
    return {"force_terminal": console.is_terminal, "width": console.width,
            "stderr": console.stderr, "no_color": console.no_color, "quiet": console.quiet,
            "color_system": console.color_system}


def _check_importable(cls: type) -> None:
    where = f"{cls.__module__}.{cls.__qualname__}"
    try:
        obj: Any = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        obj = None
    if obj is not cls:
        raise TypeError(f"step '{cls.name}' has isolate=True but its class {where} cannot be "
                        f"imported by a subprocess; define it at module level or set "
                        f"isolate=False")


def _child_main(conn: Any, module: str, qualname: str, recipe: Any, inputs: dict[str, Path],
                out: Path, work: Path, console_opts: dict, step_name: str, environ: dict[str, str]) -> None:
    """Entry point of an isolated step's subprocess. Sends exactly one message on ``conn``.

    The environment is the runner's as of now (a fork server keeps the one it started with).
    """
    os.environ.clear()
    os.environ.update(environ)
    try:
        try:
            obj: Any = importlib.import_module(module)
            for part in qualname.split("."):
                obj = getattr(obj, part)
            step = obj()
            console = Console(**console_opts)
            ctx = StepContext(recipe=recipe, inputs=inputs, out=out, work=work, console=console,
                              step_name=step_name)
            with ctx.capture_warnings():
                metrics = _check_metrics(step.name, step.run(ctx))
            msg: tuple = ("ok", metrics, _peak_rss_self())
        except OvexportError as e:
            cls = type(e)
            state = dict(e.__dict__)
            try:
                state_blob: bytes | None = pickle.dumps(state)
            except Exception:
                state_blob = None
            msg = ("ovexport", cls.__module__, cls.__qualname__, e.what, e.fix, state_blob,
                   traceback.format_exc())
        except BaseException:
            msg = ("error", traceback.format_exc())
        conn.send(msg)
    finally:
        conn.close()


def _rebuild_ovexport_error(module: str, qualname: str, what: str, fix: str | None,
                            state_blob: bytes | None, tb: str) -> OvexportError:
    err: OvexportError | None = None
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        if isinstance(obj, type) and issubclass(obj, OvexportError):
            err = obj.__new__(obj)
            state = pickle.loads(state_blob) if state_blob is not None else {}
            err.__dict__.update(state)
            err.what, err.fix = what, fix
            Exception.__init__(err, err.line())
    except Exception:
        err = None
    if err is None:
        err = OvexportError(what, fix)
    err.child_traceback = tb  # type: ignore[attr-defined]
    return err


def _stop_child(proc: Any) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()


_PRELOADED: set[str] | None = None


def _mp_context(step: Step):
    """A fresh process per step, forked from a server that imported the heavy modules once.

    "forkserver" keeps spawn's clean, thread-free parent (nothing of the runner's state leaks into
    the step) while importing torch/openvino once per run, not once per step (~3 s each). The
    preload list is fixed when the server starts: every registered step's ``preload``.
    """
    global _PRELOADED
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    mp = multiprocessing.get_context("forkserver")
    if _PRELOADED is None:
        wanted = {m for c in all_steps().values() for m in c.preload} | set(step.preload)
        _PRELOADED = {m for m in wanted if importlib.util.find_spec(m) is not None}
        mp.set_forkserver_preload(sorted(_PRELOADED | {"ovexport.engine.runner"}))
    return mp


def _run_isolated(step: Step, recipe: Any, inputs: dict[str, Path], out: Path, work: Path,
                  console: Console) -> tuple[dict | None, int]:
    cls = type(step)
    _check_importable(cls)
    mp = _mp_context(step)
    recv_conn, send_conn = mp.Pipe(duplex=False)
    proc = mp.Process(target=_child_main, name=f"ovexport-{step.name}",
                      args=(send_conn, cls.__module__, cls.__qualname__, recipe, dict(inputs),
                            out, work, _console_options(console), step.name, dict(os.environ)))
    msg = None
    try:
        proc.start()
        send_conn.close()  # the child holds the only write end: EOF when it dies
        while True:
            if recv_conn.poll(0.2):
                try:
                    msg = recv_conn.recv()
                except EOFError:
                    msg = None
                break
            if not proc.is_alive() and not recv_conn.poll(0):
                break
        proc.join()
    except BaseException:  # Ctrl-C (or anything else) in the parent: the child must not outlive it
        _stop_child(proc)
        raise
    finally:
        recv_conn.close()
        send_conn.close()
    if msg is None or msg[0] != "ok":  # a dead child may have left the cursor hidden
        with contextlib.suppress(Exception):
            console.show_cursor(True)
    if msg is None:
        code = proc.exitcode
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            fix = ("the system probably ran out of memory (see `dmesg`): free memory or use a "
                   "machine with more RAM, then rerun" if -code == signal.SIGKILL else
                   "rerun; if it happens again, report it with the output above")
            raise OvexportError(f"step '{step.name}' was killed by {sig} (exit code {code})",
                                fix=fix)
        raise OvexportError(f"step '{step.name}' subprocess exited with code {code} without a "
                            f"result", fix="see the output above for the cause, then rerun")
    kind = msg[0]
    if kind == "ok":
        return msg[1], int(msg[2])
    if kind == "ovexport":
        raise _rebuild_ovexport_error(*msg[1:])
    raise RuntimeError(f"step '{step.name}' failed in its subprocess:\n{msg[1]}")
