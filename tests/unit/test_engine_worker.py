"""``engine.worker.Worker``: an object in its own process (the compare reference, the bench baseline)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)  # worker_hosts must be importable by name in the spawned child
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from worker_hosts import ALLOC_BYTES, BrokenAtStart, Counter  # noqa: E402

from ovexport.engine.worker import Worker  # noqa: E402
from ovexport.errors import OvexportError, RecipeError  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]


def test_methods_run_in_another_process_and_keep_state():
    with Worker(Counter, 10, name="counter") as w:
        assert w.call("pid") != os.getpid()
        assert w.call("add", 2) == 12
        assert w.call("add", n=3) == 15        # state kept between calls


def test_progress_calls_reach_the_parent_in_order():
    seen = []
    with Worker(Counter, 0) as w:
        assert w.call("add", 3, progress=lambda done, total: seen.append((done, total))) == 3
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_peak_memory_is_the_childs_own():
    with Worker(Counter, 0) as w:
        start = w.peak_rss_bytes
        assert w.call("hold", ALLOC_BYTES) == ALLOC_BYTES
        grown = w.peak_rss_bytes - start
    # the start's peak may sit a few pages above the resident size it fell back to (seen: 48 KiB), so the
    # allocation can raise the peak by a little less than its size
    assert ALLOC_BYTES - 4 * 1024 * 1024 <= grown < ALLOC_BYTES + 100 * 1024 * 1024


def test_an_ovexport_error_keeps_its_class_and_fields_and_the_worker_goes_on():
    with Worker(Counter, 0) as w:
        with pytest.raises(RecipeError) as ei:
            w.call("fail_recipe")
        assert ei.value.problems == ["r.yaml:3: bad key 'x'", "r.yaml:4: bad value"] and ei.value.fix == "remove it"
        assert "fail_recipe" in ei.value.child_traceback
        with pytest.raises(RuntimeError, match="ZeroDivisionError: boom in the worker"):
            w.call("fail_other")
        assert w.call("add", 1) == 1


def test_a_failing_constructor_is_raised_at_start():
    with pytest.raises(RecipeError, match="cannot start"):
        Worker(BrokenAtStart)


def test_a_killed_worker_is_one_line_error():
    w = Worker(Counter, 0, name="doomed")
    try:
        with pytest.raises(OvexportError) as ei:
            w.call("die")
    finally:
        w.close()
    assert type(ei.value) is OvexportError
    assert "doomed was killed by SIGKILL" in ei.value.what and "memory" in ei.value.fix


def test_close_ends_the_process():
    w = Worker(Counter, 0)
    w.close()
    assert not w._proc.is_alive()
    w.close()  # twice is harmless


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)  # a zombie is gone
    except FileNotFoundError:
        return True


# a step run before the worker leaves the engine's fork server running: the worker is then forked from it
_WARM_SERVER = ("from engine_dummy_steps import IsoNoop\n"
                "from ovexport.engine import isolation\n"
                "isolation.warm_up(IsoNoop())\n")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("start", ["spawned", "forked by the fork server"])
def test_a_worker_busy_in_a_call_ends_when_its_parent_is_killed(start):
    script = (f"import os, sys; sys.path.insert(0, {_HERE!r})\n"
              + (_WARM_SERVER if start != "spawned" else "")
              + "from worker_hosts import Counter\n"
              "from ovexport.engine.worker import Worker\n"
              "w = Worker(Counter, 0)\n"
              "w.call('sleep', 1.5)\n"   # outlives a check of its parent watch while the parent lives
              "print(w.call('pid'), w.call('parent_pid') == os.getpid(), flush=True)\n"
              "w.call('sleep', 120)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child, direct = parent.stdout.readline().split()
        child = int(child)
        assert direct == str(start == "spawned")   # forked by the server: the server is its parent process
        assert not _gone(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(child), "the worker outlived its killed parent"
    finally:
        parent.kill()
