"""Image slicing and pixel preprocessing of MiniCPM-V-2, checked against hand-computed arithmetic.

Formulas (spec / original modeling_minicpmv.py), S = 448, p = 14:
    ratio = W*H / S^2 ; multiple = min(ceil(ratio), 9)
    ensure_divide(x, p) = max(round(x / p) * p, p)            (Python round: half to even)
    find_best_resize((w, h)): if w*h > S^2 or upscale: r = w/h ; h' = int(S / sqrt(r)) ; w' = int(h' * r)
                              -> (ensure_divide(w'), ensure_divide(h'))
    grid = argmin over factor pairs [cols, rows] of {multiple-1, multiple, multiple+1} \\ {1, >9}
           of |log(W/H) - log(cols/rows)|, first wins ties
    refine = find_best_resize((ensure_divide(W, cols)/cols, ensure_divide(H, rows)/rows), upscale) * grid
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ovexport.errors import InputError
from ovexport.models.minicpmv2.slicing import (
    SlicedImage, best_grid, ensure_divide, find_best_resize, get_refine_size, load_image, slice_image,
    split_to_patches, to_pixel_values,
)

pytestmark = pytest.mark.unit

CASES = [
    # (W, H), grid (cols, rows), source size, patch size
    #
    # 448x448: ratio = 1 -> multiple 1 -> no slices. Upscale path: r = 1, h = int(448/1) = 448,
    # w = int(448*1) = 448 -> source 448x448.
    ((448, 448), None, (448, 448), None),
    # 10x10: ratio = 100/200704 -> multiple 1 -> no slices; upscale is allowed: r = 1 -> h = 448,
    # w = 448 -> source 448x448 (resized UP, not 14x14).
    ((10, 10), None, (448, 448), None),
    # 378x378 (the 27x27 patch grid of the vision tower): ratio 0.71 -> no slices -> upscaled to 448x448.
    ((378, 378), None, (448, 448), None),
    # 2000x1: ratio 0.00996 -> no slices; r = 2000, h = int(448/44.72) = int(10.02) = 10,
    # w = int(10*2000) = 20000 -> ensure_divide(20000) = round(1428.57)*14 = 20006,
    # ensure_divide(10) = max(round(0.71)*14, 14) = 14 -> source 20006x14 (the 14 floor).
    ((2000, 1), None, (20006, 14), None),
    # 1344x896: ratio = 1204224/200704 = 6.0 -> multiple 6 -> candidates 5, 6, 7:
    # [1,5] [5,1] [1,6] [2,3] [3,2] [6,1] [1,7] [7,1]; log(1344/896) = log(1.5) = log(3/2) -> [3,2], error 0.
    # source (down only): r = 1.5, h = int(448/1.2247) = int(365.8) = 365, w = int(547.5) = 547
    #   -> ensure_divide: 547/14 = 39.07 -> 546 ; 365/14 = 26.07 -> 364 -> 546x364.
    # refine: ensure_divide(1344, 3) = 1344, ensure_divide(896, 2) = 896 -> cell 448x448 -> upscale path
    #   r = 1 -> 448x448 -> refine 1344x896, patches 448x448, 2 rows x 3 cols.
    ((1344, 896), (3, 2), (546, 364), (448, 448)),
    # 1344x600: ratio = 806400/200704 = 4.018 -> multiple 5 -> candidates 4, 5, 6:
    # log(2.24) = 0.806; errors: [1,4] 2.19, [2,2] 0.806, [4,1] 0.580, [1,5] 2.42, [5,1] 0.803,
    # [1,6] 2.60, [2,3] 1.21, [3,2] 0.401, [6,1] 0.985 -> [3,2].
    # source: r = 2.24, h = int(448/1.4967) = int(299.3) = 299, w = int(299*2.24) = int(669.8) = 669
    #   -> 669/14 = 47.8 -> 672 ; 299/14 = 21.4 -> 294 -> 672x294.
    # refine: ensure_divide(1344, 3) = 1344 -> cell w 448.0 ; ensure_divide(600, 2) = 600 -> cell h 300.0
    #   cell: r = 1.4933, h = int(448/1.2220) = int(366.6) = 366, w = int(366*1.4933) = int(546.6) = 546
    #   -> 546/14 = 39 -> 546 ; 366/14 = 26.1 -> 364 -> patches 546x364, refine 1638x728.
    ((1344, 600), (3, 2), (672, 294), (546, 364)),
    # 400x1200 (tall): ratio = 480000/200704 = 2.39 -> multiple 3 -> candidates 2, 3, 4:
    # log(1/3); [1,3] gives error 0 -> grid (1, 3) = 1 col, 3 rows.
    # source: r = 1/3, h = int(448*1.7321) = int(775.96) = 775, w = int(775/3) = int(258.3) = 258
    #   -> 258/14 = 18.4 -> 252 ; 775/14 = 55.4 -> 770 -> 252x770.
    # refine: ensure_divide(400, 1) = 400, ensure_divide(1200, 3) = 1200 -> cell 400x400 -> upscale
    #   r = 1 -> 448x448 -> refine 448x1344.
    ((400, 1200), (1, 3), (252, 770), (448, 448)),
    # 448x896: ratio = 2 -> multiple 2 -> candidates 2, 3 ([1] is dropped): [1,2] [2,1] [1,3] [3,1];
    # log(0.5) -> [1,2] (1 col, 2 rows), error 0.
    # source: r = 0.5, h = int(448/0.7071) = int(633.6) = 633, w = int(316.5) = 316
    #   -> 316/14 = 22.57 -> 322 ; 633/14 = 45.2 -> 630 -> 322x630.
    # refine: cells 448x448 -> 448x448 -> refine 448x896.
    ((448, 896), (1, 2), (322, 630), (448, 448)),
    # 896x448: the transpose -> grid (2, 1) = 2 cols, 1 row; source 630x322; patches 448x448.
    ((896, 448), (2, 1), (630, 322), (448, 448)),
    # 900x600: ratio 2.69 -> multiple 3 -> candidates 2, 3, 4; log(1.5) = 0.405: [2,1] 0.288, [2,2] 0.405,
    # [3,1] 0.693 ... -> (2, 1). source: h = int(448/1.2247) = 365, w = 547 -> 546x364.
    # refine: ensure_divide(900, 2) = 900 -> cell w 450.0 ; ensure_divide(600, 1) = 600 -> cell h 600.0
    #   cell: r = 0.75, h = int(448/0.8660) = int(517.3) = 517, w = int(387.75) = 387
    #   -> 387/14 = 27.6 -> 392 ; 517/14 = 36.9 -> 518 -> patches 392x518.
    ((900, 600), (2, 1), (546, 364), (392, 518)),
    # 1000x1000: ratio 4.98 -> multiple 5 -> candidates 4, 5, 6; log 1 = 0 -> [2,2] (error 0).
    # source: r = 1, h = 448, w = 448 -> 448x448. refine: ensure_divide(1000, 2) = 1000 -> cells 500x500
    #   -> upscale path r = 1 -> 448x448.
    ((1000, 1000), (2, 2), (448, 448), (448, 448)),
]


@pytest.mark.parametrize("size,grid,source,patch", CASES, ids=[f"{w}x{h}" for (w, h), *_ in CASES])
def test_slice_sizes(size, grid, source, patch):
    img = Image.new("RGB", size, (10, 20, 30))
    s = slice_image(img)
    assert isinstance(s, SlicedImage)
    assert s.grid == grid
    assert s.source.size == source
    assert best_grid(size) == grid
    if grid is None:
        assert s.patches == [] and s.images == [s.source]
        return
    cols, rows = grid
    assert len(s.patches) == rows and all(len(r) == cols for r in s.patches)
    assert all(p.size == patch for r in s.patches for p in r)
    assert len(s.images) == 1 + cols * rows


def test_ensure_divide():
    assert ensure_divide(448, 14) == 448
    assert ensure_divide(547, 14) == 546  # 39.07 -> 39
    assert ensure_divide(35, 14) == 28  # 2.5 -> round half to even -> 2
    assert ensure_divide(49, 14) == 56  # 3.5 -> 4
    assert ensure_divide(3, 14) == 14  # never below one patch
    assert ensure_divide(0.4, 14) == 14
    assert ensure_divide(1344, 3) == 1344 and ensure_divide(1000, 3) == 999  # 333.33 -> 333


def test_find_best_resize():
    # small image, no upscale: kept, only snapped to the patch multiple
    assert find_best_resize((300, 200), 448, 14) == (294, 196)
    # same with upscale: r = 1.5 -> h = int(365.8) = 365, w = int(547.5) = 547 -> (546, 364)
    assert find_best_resize((300, 200), 448, 14, allow_upscale=True) == (546, 364)
    # large image: always down to about 448^2
    assert find_best_resize((1344, 896), 448, 14) == (546, 364)


def test_get_refine_size():
    assert get_refine_size((1344, 600), (3, 2), 448, 14, allow_upscale=True) == (1638, 728)
    assert get_refine_size((1344, 896), (3, 2), 448, 14, allow_upscale=True) == (1344, 896)
    assert get_refine_size((400, 1200), (1, 3), 448, 14, allow_upscale=True) == (448, 1344)


def test_grid_ties_first_wins():
    # 2.5 x 1 area with a square aspect can't happen; use max_slice_nums to force candidates:
    # 896x896: ratio 4 -> candidates 3, 4, 5 -> [2,2] exact. With max_slice_nums=3: multiple 3 ->
    # candidates 2, 3 -> [1,2] and [2,1] tie (|log 2|); the first, [1,2], wins.
    assert best_grid((896, 896), max_slice_nums=3) == (1, 2)
    assert best_grid((896, 896)) == (2, 2)
    assert best_grid((896, 896), never_split=True) is None
    assert best_grid((896, 896), max_slice_nums=1) is None


def test_never_split_resizes_like_no_slice():
    s = slice_image(Image.new("RGB", (1344, 896)), never_split=True)
    assert s.grid is None and s.patches == []
    # upscale path: r = 1.5 -> 546x364
    assert s.source.size == (546, 364)


def test_bicubic_resize_is_used():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (300, 500, 3), dtype=np.uint8))
    s = slice_image(img)
    assert s.grid is None
    expected = img.resize(s.source.size, Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(s.source), np.asarray(expected))
    big = Image.fromarray(rng.integers(0, 256, (600, 1344, 3), dtype=np.uint8))
    s = slice_image(big)
    refine = big.resize((1638, 728), Image.Resampling.BICUBIC)
    assert np.array_equal(np.asarray(s.patches[1][2]), np.asarray(refine.crop((1092, 364, 1638, 728))))
    assert np.array_equal(np.asarray(s.source), np.asarray(big.resize((672, 294), Image.Resampling.BICUBIC)))


def test_patches_are_row_major():
    # 1344x896 -> grid (3, 2), refine size == original size, so each patch is exactly one colour cell
    arr = np.zeros((896, 1344, 3), np.uint8)
    colours = {}
    for r in range(2):
        for c in range(3):
            colours[(r, c)] = (40 * (r * 3 + c) + 10, 255 - 30 * c, 100 + 50 * r)
            arr[r * 448:(r + 1) * 448, c * 448:(c + 1) * 448] = colours[(r, c)]
    s = slice_image(Image.fromarray(arr))
    assert s.grid == (3, 2)
    flat = s.images[1:]
    for k, (r, c) in enumerate([(r, c) for r in range(2) for c in range(3)]):
        assert s.patches[r][c] is flat[k]
        assert np.all(np.asarray(flat[k]) == np.array(colours[(r, c)], np.uint8)), (r, c)


def test_split_to_patches_boxes():
    img = Image.new("RGB", (6, 4))
    for x in range(6):
        for y in range(4):
            img.putpixel((x, y), (x, y, 0))
    patches = split_to_patches(img, (3, 2))  # cols 3, rows 2 -> 2x2 cells
    assert [[p.getpixel((0, 0))[:2] for p in row] for row in patches] == [
        [(0, 0), (2, 0), (4, 0)], [(0, 2), (2, 2), (4, 2)]]


def test_pixel_values_normalisation():
    arr = np.array([[[0, 128, 255], [255, 0, 51]]], np.uint8)  # H=1, W=2
    pv = to_pixel_values(Image.fromarray(arr))
    assert pv.dtype == np.float32 and pv.shape == (3, 1, 2)
    assert pv[0, 0, 0] == -1.0 and pv[2, 0, 0] == 1.0 and pv[0, 0, 1] == 1.0
    assert pv[1, 0, 0] == np.float32((np.float32(128) / np.float32(255) - np.float32(0.5)) / np.float32(0.5))
    assert np.allclose(pv[:, 0, 1], [1.0, -1.0, 51 / 255 * 2 - 1])
    # grey / RGBA images are converted to RGB
    assert to_pixel_values(Image.new("L", (5, 3), 255)).shape == (3, 3, 5)
    assert to_pixel_values(Image.new("RGBA", (5, 3), (255, 0, 0, 0)))[:, 0, 0].tolist() == [1.0, -1.0, -1.0]


def test_pixel_values_match_torchvision():
    transforms = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8))
    t = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=(0.5,) * 3, std=(0.5,) * 3)])
    assert np.array_equal(to_pixel_values(img), t(img).numpy())


def test_load_image(tmp_path):
    p = tmp_path / "a.png"
    Image.new("RGBA", (20, 10), (1, 2, 3, 4)).save(p)
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (20, 10) and img.getpixel((0, 0)) == (1, 2, 3)
    assert load_image(str(p)).size == (20, 10)


@pytest.mark.parametrize("kind", ["missing", "garbage", "directory", "truncated"])
def test_load_image_errors(tmp_path, kind):
    p = tmp_path / "img.jpg"
    if kind == "garbage":
        p.write_bytes(b"this is not an image")
    elif kind == "directory":
        p.mkdir()
    elif kind == "truncated":
        Image.new("RGB", (64, 64), (200, 10, 10)).save(p, format="PNG")
        p.write_bytes(p.read_bytes()[:60])
    with pytest.raises(InputError) as e:
        load_image(p)
    msg = str(e.value)
    assert "img.jpg" in msg and "\n" not in msg and "fix:" in msg
