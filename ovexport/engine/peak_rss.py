"""Peak memory (resident set size) of a step, in bytes.

* isolated steps (``isolation.py``): the child's ``VmHWM`` from ``/proc/self/status`` (peak RSS of the
  child's own address space), read by :func:`peak_rss_self` at its end. ``ru_maxrss`` is *not* used on
  Linux because a spawned child inherits the parent's high-water mark across fork+exec (measured: an
  800 MB parent made an idle child report 850 MB). Elsewhere ``ru_maxrss`` is the fallback.
* in-process steps (:class:`PeakMeter`): the process-wide high-water mark after resetting it at step
  start (``/proc/self/clear_refs`` ← ``5``, then ``VmHWM``), so it includes what the process held
  before the step; where that is unavailable, the max of a psutil RSS sampling thread (every 50 ms).
"""
from __future__ import annotations

import sys
import threading
from typing import Any


def vm_hwm() -> int | None:
    """Peak RSS of this process's address space (Linux), bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_self() -> int:
    """Peak RSS of this process so far, bytes (``VmHWM``, else ``ru_maxrss``)."""
    hwm = vm_hwm()
    if hwm is not None:
        return hwm
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r if sys.platform == "darwin" else r * 1024)


class PeakMeter:
    """Peak RSS of this process while the block runs (see the module docstring): ``.peak`` after it."""

    interval = 0.05

    def __init__(self, force_sampling: bool = False):
        self.force_sampling = force_sampling
        self.peak: int = 0
        self.mode = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "PeakMeter":
        if not self.force_sampling and vm_hwm() is not None:
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
            self.peak = vm_hwm() or 0
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        import psutil
        self.peak = max(self.peak, psutil.Process().memory_info().rss)
