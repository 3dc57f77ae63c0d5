"""Wall time of `ovexport run` for a second recipe sharing the first one's checkpoint, with and without the
run cache (issue 8). Prints one line per run and the ratio; figures go to BENCHMARKS.md.

    python benchmarks/bench_run_cache.py [--recipe recipes/tiny-minicpmv2-int4.yaml] [--repeats 2]

Run 0 builds the first recipe (fills the run cache). Then, per repeat, two fresh recipes identical except
for their names (so neither has a work directory yet), both with the LLM's int4 ratio changed (0.6 -> 0.4,
0.5, ...: a ratio no earlier run used, so compress and validate are not in the cache): one with the run
cache (download and the conversions restored by hard links; compress, validate and package run), one with
--no-run-cache (everything runs). Last, a renamed copy of an already built recipe (every step but package
restored). Each run is a separate `python -m ovexport.cli run` process, timed from the outside.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(recipe: str, root: Path, name: str, ratio: float, *extra: str) -> tuple[float, dict[str, str]]:
    cmd = [sys.executable, "-m", "ovexport.cli", "run", recipe, "--set", f"output.root={root}",
           "--set", f"name={name}", "--set", f"compression.llm.ratio={ratio}", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    lock = json.loads((root / ".work" / name / "ovexport.lock.json").read_text())["steps"]
    how = {s: ("cached" if "run_cache" in e else f"{e['duration_s']:.1f} s") for s, e in lock.items()}
    return wall, how


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="recipes/tiny-minicpmv2-int4.yaml")
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    flags = [line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")][:1]
    isa = sorted({f for f in (flags[0].split() if flags else []) if f.startswith(("avx", "amx"))})
    print(f"cpu flags: {' '.join(isa)}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-runcache-") as tmp:
        root = Path(tmp)
        wall, _ = run(a.recipe, root, "first", 0.6)
        print(f"run 0: first recipe, fills the cache: {wall:.1f} s")
        cached, uncached = [], []
        for i in range(a.repeats):
            for label, extra, acc in (("with run cache", (), cached), ("--no-run-cache", ("--no-run-cache",),
                                                                          uncached)):
                wall, how = run(a.recipe, root, f"second-{i}-{'c' if not extra else 'n'}", 0.4 + 0.1 * i,
                                *extra)
                acc.append(wall)
                print(f"repeat {i}, second recipe, {label}: {wall:.1f} s   "
                      + ", ".join(f"{s}={v}" for s, v in how.items()))
        best_c, best_n = min(cached), min(uncached)
        print(f"best of {a.repeats}: with run cache {best_c:.1f} s, without {best_n:.1f} s, "
              f"ratio {best_c / best_n:.2f}")
        wall, how = run(a.recipe, root, "renamed-copy", 0.4)
        print(f"renamed copy of a built recipe, with run cache: {wall:.1f} s   "
              + ", ".join(f"{s}={v}" for s, v in how.items()))


if __name__ == "__main__":
    main()
