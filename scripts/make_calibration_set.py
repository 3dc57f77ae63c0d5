#!/usr/bin/env python
"""Write a calibration set as a local directory (images + questions.jsonl) a recipe can point at.

    python scripts/make_calibration_set.py calib/                         # the builtin set (12 samples)
    python scripts/make_calibration_set.py calib/ --source hf-dataset:lmms-lab/COCO-Caption:val -n 32
    python scripts/make_calibration_set.py calib/ --source other_dir/ -n 8

Then, in a recipe: ``calibration: {source: calib}`` (relative to the recipe file). Useful to look at the
builtin set, to edit it, or to freeze a Hub subset for offline machines.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ovexport.calibration import load_samples
from ovexport.calibration.builtin import BUILTIN_SIZE
from ovexport.calibration.local import QUESTIONS, write_local_set
from ovexport.errors import OvexportError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="directory to write (images + questions.jsonl)")
    ap.add_argument("--source", default="builtin", help="builtin | hf-dataset:<name>[:<split>] | a directory")
    ap.add_argument("-n", "--num-samples", type=int, default=None, help="samples to write (default: all of "
                    "builtin, 32 otherwise)")
    ap.add_argument("--format", default="png", choices=("png", "jpg", "webp"), help="image file format")
    ap.add_argument("--force", action="store_true", help="write into a non-empty directory")
    args = ap.parse_args(argv)
    try:
        if args.out.exists() and any(args.out.iterdir()) and not args.force:
            raise OvexportError(f"{args.out} is not empty", fix="choose another directory or pass --force")
        n = args.num_samples or (BUILTIN_SIZE if args.source == "builtin" else 32)
        samples = load_samples(args.source, n, base_dir=Path.cwd(), log=lambda m: print(m, file=sys.stderr))
        write_local_set(samples, args.out, fmt=args.format)
    except OvexportError as exc:
        print(f"error: {exc.line()}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {len(samples)} samples to {args.out} ({QUESTIONS} + images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
