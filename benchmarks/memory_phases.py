#!/usr/bin/env python
"""Where a step's peak memory is set: the validate or compress step's own code run in this process, with its
resident set sampled every 0.1 s and each sample put in the phase the step says it is in.

* ``validate``: ``run_validation`` on the recipe's checkpoint and final IRs (its phases: each check's sub-tasks as it
  reports them, e.g. ``end_to_end: PyTorch reference (llm, image_encoder)``); no reference cache, so every
  PyTorch output is computed as in a first build.
* ``compress``: ``compress_part`` of one IR (``--part image_encoder --ir openvino_vision_embeddings_model.xml``);
  its phases: calibration data, then NNCF's own log lines (e.g. ``Statistics collection``), then saving.

The recipe must have been run up to the step before (``ovexport run RECIPE --until compress``, same ``--set``):
its inputs are read from the recipe's work directory. Prints one row per phase: its peak VmRSS with the
anonymous and file-backed parts at that moment, and the process's VmHWM at the end.

Usage:
  python benchmarks/memory_phases.py validate recipes/synthetic-full-minicpmv2-int4.yaml --set output.root=/data/mem
  python benchmarks/memory_phases.py compress recipes/synthetic-full-minicpmv2-int4-int8vision.yaml \
      --part image_encoder --ir openvino_vision_embeddings_model.xml
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import platform
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

GB = 1e9


def status() -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and VmHWM of this process, bytes."""
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key = line.split(":", 1)[0]
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                out[key] = int(line.split()[1]) * 1024
    return out


@dataclass
class Phase:
    name: str
    started: float
    seconds: float = 0.0
    peak: dict[str, int] = field(default_factory=lambda: {"VmRSS": 0, "RssAnon": 0, "RssFile": 0})


class PhaseSampler:
    """``with PhaseSampler() as s: ... s.mark("phase") ...``: per phase, the sample of largest VmRSS."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self.phases: list[Phase] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.mark("start")

    def mark(self, name: str) -> None:
        with self._lock:
            if self.phases and self.phases[-1].name == name:
                return
            now = time.monotonic()
            if self.phases:
                self.phases[-1].seconds = now - self.phases[-1].started
            self.phases.append(Phase(name, now))
        self.sample()

    def sample(self) -> None:
        s = status()
        with self._lock:
            p = self.phases[-1]
            if s["VmRSS"] > p.peak["VmRSS"]:
                p.peak = {k: s[k] for k in ("VmRSS", "RssAnon", "RssFile")}

    # validators' progress protocol: describe(text) for a sub-task, call() when a check is done
    def describe(self, text: str) -> None:
        self.mark(text)

    def __call__(self) -> None:
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> "PhaseSampler":
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.mark("end")

    def print(self) -> None:
        print(f"{'phase':<70} {'s':>7} {'VmRSS GB':>9} {'anon':>6} {'file':>6}")
        for p in self.phases[:-1]:
            print(f"{p.name[:70]:<70} {p.seconds:7.1f} {p.peak['VmRSS'] / GB:9.2f} {p.peak['RssAnon'] / GB:6.2f} "
                  f"{p.peak['RssFile'] / GB:6.2f}")
        worst = max(self.phases, key=lambda p: p.peak["VmRSS"])
        print(f"peak phase: {worst.name} ({worst.peak['VmRSS'] / GB:.2f} GB); VmHWM {status()['VmHWM'] / GB:.2f} GB")


@contextlib.contextmanager
def nncf_phases(sampler: PhaseSampler):
    """NNCF's progress bars (``Statistics collection``, ``Applying Smooth Quant``, ...) and log lines as phase
    marks, for the block only (the probe's own patch of NNCF's ``track``, undone on exit)."""
    from nncf.common.logging.track_progress import track

    class Marks(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            msg = " ".join(record.getMessage().split())
            if msg and len(msg) < 120:
                sampler.mark(f"nncf: {msg}")

    original = track.__init__

    def init(self, *args, **kw):
        original(self, *args, **kw)
        sampler.mark(f"nncf: {self.description}")

    handler = Marks(logging.INFO)
    logging.getLogger("nncf").addHandler(handler)
    track.__init__ = init
    try:
        yield
    finally:
        track.__init__ = original
        logging.getLogger("nncf").removeHandler(handler)


def step_inputs(recipe, step: str) -> dict[str, Path]:
    """The artifacts ``step`` consumes, from the recipe's work directory (run up to the step before)."""
    from ovexport.engine.planner import validate
    from ovexport.engine.step import work_dir

    steps = validate(recipe)
    where = {s.produces: s.output_path(recipe, work_dir(recipe)) for s in steps}
    wanted = next(s for s in steps if s.name == step)
    inputs = {a: where[a] for a in wanted.consumes}
    missing = [a for a, path in inputs.items() if not path.exists()]
    inputs.update({a: where[a] for a in wanted.optional if a in where and where[a].exists()})
    if missing:
        sys.exit(f"error: {', '.join(missing)} not built yet; fix: ovexport run RECIPE --until {step} "
                 f"(same --set) first")
    return inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("step", choices=("validate", "compress"))
    ap.add_argument("recipe")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--checks", default=None, help="validate: comma-separated checks (default: all)")
    ap.add_argument("--part", default="image_encoder", help="compress: the part")
    ap.add_argument("--ir", default=None, help="compress: the part's IR file (default: its first)")
    a = ap.parse_args()

    from ovexport.recipe import load_recipe

    recipe = load_recipe(a.recipe, overrides=a.overrides)
    inputs = step_inputs(recipe, a.step)
    flags = sorted(set(open("/proc/cpuinfo").read().split()) & {"avx2", "avx512f", "avx512_bf16", "amx_tile"})
    print(f"{a.step} of {recipe.name}: {platform.processor() or platform.machine()}, flags {' '.join(flags)}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    with PhaseSampler() as sampler:
        if a.step == "validate":
            from rich.console import Console

            from ovexport.validators.run_checks import run_validation
            sampler.mark("imports")
            checks = a.checks.split(",") if a.checks else None
            run_validation(inputs["checkpoint"], inputs["compressed_ir"], recipe.validation, Console(stderr=True),
                           checks=checks, progress=sampler)
        else:
            from ovexport.steps.compress import compress_part
            policy = getattr(recipe.compression, a.part)
            if policy is None:
                sys.exit(f"error: {a.recipe} does not compress {a.part}")
            sampler.mark("calibration data, reading the IR")
            with nncf_phases(sampler):
                compress_part(recipe, a.part, policy, inputs, log=sampler.mark, ir=a.ir)
    sampler.print()


if __name__ == "__main__":
    main()
