"""An object that lives in its own process: memory isolation for work that is not a step.

``Worker(factory, *args)`` starts a process that builds ``factory(*args)`` and then runs
that object's methods on request, one at a time: ``worker.call("method", *args, progress=f)``. A method
called with ``progress`` gets a callback whose calls are forwarded to ``f`` in the parent (a rich progress
bar stays in the parent, the only live display). The child's peak RSS comes back with every answer
(``worker.peak_rss_bytes``), measured in its own address space. The process is forked from the step engine's fork
server when one runs with this environment (``compare`` builds its variants first: the reference worker then
starts with torch and the model code already imported), else a fresh ("spawn") interpreter.

Used where two large things would otherwise share one process's high-water mark: the PyTorch reference
next to the IRs in ``compare``, and the notebook baseline next to our pipeline in ``bench``. Errors come
back as the step engine's do (``child_messages.py``); Ctrl-C or an error in the parent stops the child.
"""
from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .child_messages import died_without_result, error_message, raise_error_message, stop_child
from .peak_rss import peak_rss_self


def _exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """A daemon thread ends this process once the process that started it is gone (killed parents do not stop
    their children, and a worker busy in a long call never reads the closed pipe). A child forked by the fork
    server has the server as its parent process, and the server ends when the process that started it does: so
    either parent changing or ``parent`` gone ends the worker."""
    first_parent = os.getppid()

    def gone() -> bool:
        if os.getppid() != first_parent:
            return True
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        return False

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if gone():
                os._exit(1)

    threading.Thread(target=watch, name="ovexport-worker-parent-watch", daemon=True).start()


def _serve(conn: Any, factory: Callable[..., Any], args: tuple, parent: int, environ: dict[str, str]) -> None:
    """The child's loop: build the object, then answer ``(method, args, kwargs, wants_progress)`` requests. The
    environment is the parent's as of the start (a fork server keeps the one it started with)."""
    from .isolation import begin_child
    begin_child(environ)
    _exit_with_parent(parent)
    try:
        try:
            obj = factory(*args)
            conn.send(("ok", None, peak_rss_self()))
        except BaseException as e:
            conn.send(error_message(e))
            return
        while True:
            try:
                request = conn.recv()
            except EOFError:  # the parent is gone
                return
            if request is None:
                return
            method, a, kw, wants_progress = request
            try:
                if wants_progress:
                    kw = {**kw, "progress": lambda *p: conn.send(("progress", p))}
                result = getattr(obj, method)(*a, **kw)
                conn.send(("ok", result, peak_rss_self()))
            except BaseException as e:
                conn.send(error_message(e))
    finally:
        conn.close()


class Worker:
    """``factory(*args)`` built and served in a subprocess (``factory`` must be importable: a module-level
    class or function). Use as a context manager; ``close()`` ends the process."""

    def __init__(self, factory: Callable[..., Any], *args: Any, name: str = "worker"):
        self.name = name
        self.peak_rss_bytes = 0
        from .isolation import warm_context
        mp = warm_context() or multiprocessing.get_context("spawn")
        self._conn, child_conn = mp.Pipe(duplex=True)
        self._proc = mp.Process(target=_serve, args=(child_conn, factory, args, os.getpid(), dict(os.environ)),
                                name=f"ovexport-{name}", daemon=True)
        try:
            self._proc.start()
            child_conn.close()
            self._answer(None)
        except BaseException:
            self.close()
            raise

    def _answer(self, progress: Callable[..., None] | None) -> Any:
        while True:
            if self._conn.poll(0.2):
                try:
                    msg = self._conn.recv()
                except EOFError:
                    msg = None
            elif not self._proc.is_alive() and not self._conn.poll(0):
                msg = None
            else:
                continue
            if msg is None:
                self._proc.join(5)
                raise died_without_result(self.name, self._proc.exitcode)
            if msg[0] == "progress":
                if progress is not None:
                    progress(*msg[1])
                continue
            if msg[0] == "ok":
                self.peak_rss_bytes = max(self.peak_rss_bytes, int(msg[2]))
                return msg[1]
            raise_error_message(msg, self.name)

    def call(self, method: str, *args: Any, progress: Callable[..., None] | None = None, **kwargs: Any) -> Any:
        """Run ``method(*args, **kwargs)`` on the object in the child and return its (picklable) result."""
        try:
            self._conn.send((method, args, kwargs, progress is not None))
            return self._answer(progress)
        except KeyboardInterrupt:
            self.close()
            raise

    def close(self) -> None:
        if self._proc.is_alive():
            try:
                self._conn.send(None)
            except (OSError, ValueError):
                pass
            self._proc.join(10)
        stop_child(self._proc)
        self._conn.close()

    def __enter__(self) -> "Worker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
