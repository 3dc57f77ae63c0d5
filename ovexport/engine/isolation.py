"""Run an ``isolate=True`` step in a fresh subprocess: memory isolation and the child's exact peak RSS.

The child is forked from a "forkserver" that imported the heavy modules once (``spawn`` where that start
method does not exist). It sends exactly one message back: its metrics and peak RSS, an OvexportError
(rebuilt in the parent with its class, fields and the child's traceback) or another error's traceback. A
child that dies without a message (killed, out of memory) becomes a one-line OvexportError; Ctrl-C in the
parent stops the child.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import multiprocessing
import os
import pickle
import signal
import traceback
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import OvexportError
from .peak_rss import peak_rss_self
from .step import Step, StepContext, all_steps, checked_metrics


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
                metrics = checked_metrics(step.name, step.run(ctx))
            msg: tuple = ("ok", metrics, peak_rss_self())
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
        mp.set_forkserver_preload(sorted(_PRELOADED | {__name__}))
    return mp


def run_isolated(step: Step, recipe: Any, inputs: dict[str, Path], out: Path, work: Path,
                 console: Console) -> tuple[dict | None, int]:
    """Run ``step`` into ``out`` in a subprocess; (its metrics, its peak RSS in bytes)."""
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
        raise _died_without_result(step, proc.exitcode)
    kind = msg[0]
    if kind == "ok":
        return msg[1], int(msg[2])
    if kind == "ovexport":
        raise _rebuild_ovexport_error(*msg[1:])
    raise RuntimeError(f"step '{step.name}' failed in its subprocess:\n{msg[1]}")


def _died_without_result(step: Step, code: int | None) -> OvexportError:
    if code is not None and code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        fix = ("the system probably ran out of memory (see `dmesg`): free memory or use a "
               "machine with more RAM, then rerun" if -code == signal.SIGKILL else
               "rerun; if it happens again, report it with the output above")
        return OvexportError(f"step '{step.name}' was killed by {sig} (exit code {code})", fix=fix)
    return OvexportError(f"step '{step.name}' subprocess exited with code {code} without a "
                         f"result", fix="see the output above for the cause, then rerun")
