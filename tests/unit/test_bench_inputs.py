"""What ``ovexport bench`` feeds a bundle comes from its model family: the image sizes are the family's, the
generic code holds none of them."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ovexport.models.interface import ValidationCases
from ovexport.models.registry import get_family
from ovexport.runtime.bench_inputs import bench_cases, synthetic_image

pytestmark = pytest.mark.unit


def _family(**attrs):
    cases = ValidationCases(end_to_end={"64x48": (64, 48, None), "30x90": (30, 90, (1, 2))}, prompt_image=(64, 48))
    return SimpleNamespace(validation_cases=cases, **attrs)


def test_the_bench_cases_are_the_family_s_own():
    fam = _family(bench_cases={"wide": (320, 160)})
    assert bench_cases(fam) == {"wide": (320, 160)}


def test_without_bench_cases_a_family_is_timed_on_its_end_to_end_validation_images():
    assert bench_cases(_family()) == {"64x48": (64, 48), "30x90": (30, 90)}


def test_the_registered_family_names_its_bench_images_in_its_package():
    fam = get_family("minicpmv2")
    cases = bench_cases(fam)
    assert cases == dict(fam.bench_cases) and len(cases) >= 2
    # each is an image of the family's end-to-end checks, whose slicer grid says how it is cut
    end_to_end = {(w, h): grid for w, h, grid in fam.validation_cases.end_to_end.values()}
    grids = [end_to_end[size] for size in cases.values()]
    assert None in grids and any(g is not None for g in grids)   # one taken whole, one cut into pieces


@pytest.mark.parametrize("w, h", [(64, 48), (30, 90), (14, 14), (448, 448), (1344, 896)])
def test_the_synthetic_image_has_any_size_asked_and_is_deterministic(w, h):
    img = synthetic_image(w, h)
    assert img.size == (w, h) and img.mode == "RGB"
    assert np.array_equal(np.asarray(img), np.asarray(synthetic_image(w, h)))
    assert not np.array_equal(np.asarray(img), np.asarray(synthetic_image(w, h, seed=1)))
