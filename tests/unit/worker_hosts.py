"""Objects served by ``engine.worker.Worker`` in the worker tests (importable by name in a spawned child)."""
from __future__ import annotations

import os
import signal

from ovexport.errors import RecipeError

ALLOC_BYTES = 200 * 1024 * 1024


class Counter:
    def __init__(self, start: int):
        self.value = start
        self.held: bytearray | None = None

    def add(self, n: int, progress=None) -> int:
        for i in range(n):
            self.value += 1
            if progress is not None:
                progress(i + 1, n)
        return self.value

    def pid(self) -> int:
        return os.getpid()

    def parent_pid(self) -> int:
        return os.getppid()

    def hold(self, n_bytes: int) -> int:
        self.held = bytearray(n_bytes)
        for i in range(0, n_bytes, 4096):  # touch every page: resident, not only reserved
            self.held[i] = 1
        return len(self.held)

    def fail_recipe(self) -> None:
        raise RecipeError(["r.yaml:3: bad key 'x'", "r.yaml:4: bad value"], fix="remove it")

    def fail_other(self) -> None:
        raise ZeroDivisionError("boom in the worker")

    def sleep(self, seconds: float) -> None:
        import time
        time.sleep(seconds)

    def die(self) -> None:
        os.kill(os.getpid(), signal.SIGKILL)


class BrokenAtStart:
    def __init__(self):
        raise RecipeError(["cannot start"], fix="give it what it needs")
