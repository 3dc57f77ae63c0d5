"""What a subprocess of ovexport sends back when it fails, and how the parent turns it into an exception.

Shared by isolated steps (``isolation.py``) and long-lived workers (``worker.py``): an OvexportError crosses
the process boundary with its class, fields and the child's traceback; any other error as its traceback; a
child that dies without a message (killed, out of memory) becomes a one-line OvexportError.
"""
from __future__ import annotations

import importlib
import pickle
import signal
import traceback
from typing import Any

from ..errors import OvexportError


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def error_message(exc: BaseException) -> tuple:
    """The message a child sends for ``exc`` (call it inside the ``except`` block: it reads the traceback)."""
    if isinstance(exc, OvexportError):
        cls = type(exc)
        try:
            state_blob: bytes | None = pickle.dumps(dict(exc.__dict__))
        except Exception:
            state_blob = None
        return ("ovexport", cls.__module__, cls.__qualname__, exc.what, exc.fix, state_blob, traceback.format_exc())
    return ("error", traceback.format_exc())


def rebuild_ovexport_error(module: str, qualname: str, what: str, fix: str | None,
                           state_blob: bytes | None, tb: str) -> OvexportError:
    err: OvexportError | None = None
    try:
        obj = _resolve(module, qualname)
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


def raise_error_message(msg: tuple, what: str) -> None:
    """Raise what a child's error message ``msg`` describes; ``what`` names the child ("step 'compress'")."""
    if msg[0] == "ovexport":
        raise rebuild_ovexport_error(*msg[1:])
    raise RuntimeError(f"{what} failed in its subprocess:\n{msg[1]}")


def died_without_result(what: str, code: int | None) -> OvexportError:
    if code is not None and code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        fix = ("the system probably ran out of memory (see `dmesg`): free memory or use a "
               "machine with more RAM, then rerun" if -code == signal.SIGKILL else
               "rerun; if it happens again, report it with the output above")
        return OvexportError(f"{what} was killed by {sig} (exit code {code})", fix=fix)
    return OvexportError(f"{what} subprocess exited with code {code} without a "
                         f"result", fix="see the output above for the cause, then rerun")


def stop_child(proc: Any) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
