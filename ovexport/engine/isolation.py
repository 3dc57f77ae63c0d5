"""Run an ``isolate=True`` step in a fresh subprocess: memory isolation and the child's exact peak RSS.

The child is forked from a "forkserver" that imported the heavy modules once (``spawn`` where that start
method does not exist). It sends exactly one message back: its metrics and peak RSS, an OvexportError
(rebuilt in the parent with its class, fields and the child's traceback) or another error's traceback. A
child that dies without a message (killed, out of memory) becomes a one-line OvexportError; Ctrl-C in the
parent stops the child.
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import multiprocessing
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from .child_messages import died_without_result, error_message, raise_error_message, stop_child
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
    begin_child(environ)
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
        except BaseException as e:
            msg = error_message(e)
        conn.send(msg)
    finally:
        conn.close()


def begin_child(environ: dict[str, str]) -> None:
    """What a step's or a worker's child does first: freeze what it inherited, then take ``environ`` (the
    parent's environment as of the start; a fork server keeps the one it started with).

    Freezing moves every object this process holds now (a forked child: the server's imports, ~500 000 objects
    of torch, timm, OpenVINO, NNCF) to the garbage collector's permanent generation, so that the full collections
    that free a released model (``util.memory.release_memory``, 0.25 s each over those objects, several per validate
    step) scan only what the child made itself. Those objects are still freed by reference counting; only a
    reference cycle among them would outlive the child, which is short-lived."""
    gc.freeze()
    os.environ.clear()
    os.environ.update(environ)


def _installed(module: str) -> bool:
    """Is the top-level package of ``module`` installed? (find_spec of a submodule would import its parents
    in the runner: torch, for "torch._dynamo")."""
    return importlib.util.find_spec(module.partition(".")[0]) is not None


_PRELOADED: set[str] | None = None
_SERVER_ENV: dict[str, str] | None = None  # the environment the running fork server started with
# variables that change by themselves while a process runs and that nothing reads at import: pytest sets
# PYTEST_CURRENT_TEST for every test, which would otherwise restart the server (~10 s) in every test
_VOLATILE = frozenset({"PYTEST_CURRENT_TEST"})
# ovexport's own variables are read when used, never at import (no module-level read in the package), and the
# child takes the runner's environment before it runs the step: changing one needs no new server
_OWN_PREFIX = "OVEXPORT_"


def _environment() -> dict[str, str]:
    """The part of the environment the preloaded modules may have read at import."""
    return {k: v for k, v in os.environ.items() if k not in _VOLATILE and not k.startswith(_OWN_PREFIX)}


def _mp_context(step: Step):
    """A fresh process per step, forked from a server that imported the heavy modules once.

    "forkserver" keeps spawn's clean, thread-free parent (nothing of the runner's state leaks into
    the step) while importing torch/openvino once per run, not once per step (~3 s each). The
    preload list is fixed when the server starts: every registered step's ``preload_modules()``.

    Preloaded modules may read the environment at import (huggingface_hub reads ``HF_HUB_OFFLINE``,
    ``HF_HUB_CACHE``), so a server is only used by a runner whose environment is the one it started with:
    when the runner's environment has changed since (a library caller, a test), the server is restarted.
    """
    global _PRELOADED, _SERVER_ENV
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    from multiprocessing import forkserver
    mp = multiprocessing.get_context("forkserver")
    env = _environment()
    if _SERVER_ENV is not None and env != _SERVER_ENV:
        stop = getattr(forkserver._forkserver, "_stop", None)  # no public way to restart it
        if stop is None:
            return multiprocessing.get_context("spawn")
        stop()
        _SERVER_ENV = None
    if _SERVER_ENV is None:  # (re)starting: preload what every registered step and this one ask for
        wanted = {m for c in (*all_steps().values(), type(step)) for m in c.preload_modules()}
        _PRELOADED = (_PRELOADED or set()) | {m for m in wanted if _installed(m)}
        mp.set_forkserver_preload(sorted(_PRELOADED | {__name__}))
    forkserver.ensure_running()  # starts it (its imports then overlap the caller's work) unless it runs
    _SERVER_ENV = env
    return mp


def warm_context():
    """The multiprocessing context of the fork server when one runs with this environment (a step runner in
    this process started it), else None. A ``Worker`` started from it skips its imports (~5 s for torch, timm and
    the model code) instead of paying them again in a spawned interpreter."""
    if _SERVER_ENV is None or _SERVER_ENV != _environment():
        return None
    from multiprocessing import forkserver
    forkserver.ensure_running()   # restarts it with the same preloads should it have died
    return multiprocessing.get_context("forkserver")


def warm_up(step: Step) -> None:
    """Start the fork server now: its imports (~10 s) then overlap the runner's planning instead of delaying
    the first isolated step. No-op where there is no fork server."""
    _mp_context(step)


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
        stop_child(proc)
        raise
    finally:
        recv_conn.close()
        send_conn.close()
    if msg is None or msg[0] != "ok":  # a dead child may have left the cursor hidden
        with contextlib.suppress(Exception):
            console.show_cursor(True)
    if msg is None:
        raise died_without_result(f"step '{step.name}'", proc.exitcode)
    if msg[0] == "ok":
        return msg[1], int(msg[2])
    raise_error_message(msg, f"step '{step.name}'")
    raise AssertionError("unreachable")
