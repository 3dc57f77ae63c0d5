"""How often openvino.genai's MiniCPM slicer sizes an image otherwise than MiniCPM-V-2's own.

genai (``src/cpp/src/visual_language/minicpm/classes.cpp``) reimplements the slicer in C++: ``float`` instead of
Python's double, ``std::round`` (half away from zero) instead of Python's ``round`` (half to even), and an integer
division for the cell size (``slicing.slice_image(genai=True)`` computes as it does). For every image size of a
grid this compares the three things that decide the pixels: the source image's size, the slice grid, and the
slices' size.

    python benchmarks/genai_slicing.py --max-side 2048 --step 1

Prints the number of sizes checked and of sizes where any of the three differs, with examples.
"""
from __future__ import annotations

import argparse

from ovexport.models.minicpmv2.slicing import slice_sizes


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
            a, b = slice_sizes((w, h)), slice_sizes((w, h), genai=True)
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
