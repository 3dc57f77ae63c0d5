"""How often openvino.genai's MiniCPM slicer sizes an image otherwise than MiniCPM-V-2's own.

genai (``src/cpp/src/visual_language/minicpm/classes.cpp``) reimplements the slicer in C++: ``float`` instead of
Python's double, ``std::round`` (half away from zero) instead of Python's ``round`` (half to even), and an integer
division for the cell size. This mirrors that arithmetic in numpy float32 and compares, for every image size of
a grid, the three things that decide the pixels: the source image's size, the slice grid, and the slices' size.

    python benchmarks/genai_slicing.py --max-side 2048 --step 1

Prints the number of sizes checked and of sizes where any of the three differs, with examples.
"""
from __future__ import annotations

import argparse
import math

import numpy as np

from ovexport.models.minicpmv2.slicing import best_grid, find_best_resize, get_refine_size

f32 = np.float32


def _round_away(x) -> int:
    x = f32(x)
    return int(np.floor(np.abs(x) + f32(0.5)) * np.sign(x))


def g_ensure_divide(length: int, patch: int) -> int:
    return max(_round_away(f32(length) / f32(patch)) * patch, patch)


def g_find_best_resize(w: int, h: int, res: int, patch: int, allow_upscale: bool) -> tuple[int, int]:
    if w * h > res * res or allow_upscale:
        r = f32(w) / f32(h)
        h = int(f32(res) / np.sqrt(r, dtype=f32))
        w = int(f32(h) * r)
    return g_ensure_divide(w, patch), g_ensure_divide(h, patch)


def g_grid(w: int, h: int, max_slices: int, res: int) -> tuple[int, int] | None:
    log_ratio = np.log(f32(w) / f32(h), dtype=f32)
    ratio = f32(w) * f32(h) / f32(res * res)
    multiple = min(int(math.ceil(ratio)), max_slices)
    if multiple <= 1:
        return None
    grids = [(m, n // m) for n in (multiple - 1, multiple, multiple + 1) if n != 1 and n <= max_slices
             for m in range(1, n + 1) if n % m == 0]
    best, err = (1, 1), f32(np.inf)
    for g in grids:
        e = abs(log_ratio - np.log(f32(g[0]) / f32(g[1]), dtype=f32))
        if e < err:
            best, err = g, e
    return best


def genai_sizes(w: int, h: int, res: int = 448, patch: int = 14, max_slices: int = 9):
    grid = g_grid(w, h, max_slices, res)
    if grid is None:
        return g_find_best_resize(w, h, res, patch, True), None, None
    source = g_find_best_resize(w, h, res, patch, False)
    rw, rh = g_ensure_divide(w, grid[0]), g_ensure_divide(h, grid[1])
    cw, ch = g_find_best_resize(rw // grid[0], rh // grid[1], res, patch, True)
    return source, grid, (cw, ch)


def v2_sizes(w: int, h: int, res: int = 448, patch: int = 14, max_slices: int = 9):
    grid = best_grid((w, h), max_slices, res)
    if grid is None:
        return find_best_resize((w, h), res, patch, allow_upscale=True), None, None
    source = find_best_resize((w, h), res, patch)
    refine = get_refine_size((w, h), grid, res, patch, allow_upscale=True)
    return source, grid, (refine[0] // grid[0], refine[1] // grid[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-side", type=int, default=64)
    ap.add_argument("--max-side", type=int, default=2048)
    ap.add_argument("--step", type=int, default=1)
    args = ap.parse_args()
    sides = range(args.min_side, args.max_side + 1, args.step)
    n = 0
    diff = {"source": 0, "grid": 0, "slice": 0, "any": 0}
    examples = []
    for w in sides:
        for h in sides:
            n += 1
            a, b = v2_sizes(w, h), genai_sizes(w, h)
            d = [x != y for x, y in zip(a, b)]
            for k, flag in zip(("source", "grid", "slice"), d):
                diff[k] += flag
            if any(d):
                diff["any"] += 1
                if len(examples) < 8:
                    examples.append(f"{w}x{h}: V-2 {a} genai {b}")
    print(f"{n} image sizes, sides {args.min_side}..{args.max_side} step {args.step}")
    for k, v in diff.items():
        print(f"  {k} differs: {v} ({100 * v / n:.3f} %)")
    print("examples (source (w, h), grid (cols, rows), slice (w, h)):")
    for e in examples:
        print("  " + e)


if __name__ == "__main__":
    main()
