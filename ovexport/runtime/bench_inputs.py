"""What ``ovexport bench`` (and the baselines it is compared with, and the compute-floor cost) feeds a bundle: the
image sizes its model family names, the question and a deterministic synthetic image."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ovexport.synthetic import images

QUESTION = "Describe this image in detail."


def bench_cases(family) -> dict[str, tuple[int, int]]:
    """name -> (width, height) of the images ``family`` is timed on: its ``bench_cases`` (an optional family
    attribute, e.g. one image the model takes whole and one it cuts into pieces), else the sizes of its end-to-end
    validation cases."""
    cases: Mapping[str, tuple[int, ...]] | None = getattr(family, "bench_cases", None)
    if cases is None:
        cases = family.validation_cases.end_to_end
    return {name: (int(size[0]), int(size[1])) for name, size in cases.items()}


def synthetic_image(width: int, height: int, seed: int = 0):
    """The synthetic test image (``ovexport.synthetic.images``) of ``width`` x ``height`` for ``seed``."""
    return images.synthetic_image(np.random.default_rng(seed), width, height)
