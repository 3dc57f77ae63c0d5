"""MiniCPM-V-2 image slicing and pixel preprocessing, as in the original ``modeling_minicpmv.py``.

An image becomes a *source* image (about 448x448 in area, sides multiples of 14) and, when it is
larger than 448x448 in area, a grid of up to 9 *patches* (slices) cut from a "refine" resize of the
image. Arithmetic (Python ``round``, ``int``, float division) follows the original bit for bit; the
resampling is PIL BICUBIC.

``genai=True`` computes the sizes as openvino.genai's C++ port does (``float``, ``std::round``: half away from zero,
an integer cell division): what ``VLMPipeline`` feeds a bundle, for measuring and checking it (docs/genai.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ovexport.errors import InputError

__all__ = [
    "SlicedImage", "ensure_divide", "find_best_resize", "get_refine_size", "split_to_patches",
    "best_grid", "slice_sizes", "slice_image", "to_pixel_values", "load_image",
]

BICUBIC = Image.Resampling.BICUBIC


@dataclass
class SlicedImage:
    """``source`` + ``patches`` (rows x cols, row-major); ``grid`` is (cols, rows), None when not sliced."""

    source: Image.Image
    patches: list[list[Image.Image]] = field(default_factory=list)
    grid: tuple[int, int] | None = None

    @property
    def images(self) -> list[Image.Image]:
        """The images fed to the encoder: [source] + patches, row-major."""
        return [self.source] + [p for row in self.patches for p in row]


def ensure_divide(length: float, patch_size: int, genai: bool = False) -> int:
    """``length`` rounded (banker's rounding, like the original) to a multiple of ``patch_size``, at least one."""
    if genai:
        q = np.float32(length) / np.float32(patch_size)
        whole = np.trunc(q)
        rounded = int(whole) + (1 if q - whole >= np.float32(0.5) else 0)      # std::round: half away from zero
        return max(rounded * patch_size, patch_size)
    return max(round(length / patch_size) * patch_size, patch_size)


def find_best_resize(original_size: tuple[float, float], scale_resolution: int, patch_size: int,
                     allow_upscale: bool = False, genai: bool = False) -> tuple[int, int]:
    """(width, height) of about ``scale_resolution**2`` area at the same aspect ratio, each side a multiple
    of ``patch_size``. Without ``allow_upscale``, an image that is already small enough keeps its size
    (only snapped to the patch multiple)."""
    width, height = original_size
    if (width * height > scale_resolution * scale_resolution) or allow_upscale:
        if genai:
            r = np.float32(width) / np.float32(height)
            height = int(np.float32(scale_resolution) / np.sqrt(r))
            width = int(np.float32(height) * r)
        else:
            r = width / height
            height = int(scale_resolution / math.sqrt(r))
            width = int(height * r)
    return ensure_divide(width, patch_size, genai), ensure_divide(height, patch_size, genai)


def get_refine_size(original_size: tuple[int, int], grid: tuple[int, int], scale_resolution: int,
                    patch_size: int, allow_upscale: bool = False, genai: bool = False) -> tuple[int, int]:
    """Size of the image the patches are cut from: each cell resized like ``find_best_resize``, times grid."""
    width, height = original_size
    grid_x, grid_y = grid
    refine_width = ensure_divide(width, grid_x, genai)
    refine_height = ensure_divide(height, grid_y, genai)
    if genai:   # integer division in genai's C++
        grid_width, grid_height = refine_width // grid_x, refine_height // grid_y
    else:
        grid_width, grid_height = refine_width / grid_x, refine_height / grid_y
    best_grid_size = find_best_resize((grid_width, grid_height), scale_resolution, patch_size,
                                      allow_upscale=allow_upscale, genai=genai)
    return best_grid_size[0] * grid_x, best_grid_size[1] * grid_y


def split_to_patches(image: Image.Image, grid: tuple[int, int]) -> list[list[Image.Image]]:
    """Crop ``image`` into rows x cols patches (``grid`` = (cols, rows)), row-major."""
    patches = []
    width, height = image.size
    grid_x = int(width / grid[0])
    grid_y = int(height / grid[1])
    for i in range(0, height, grid_y):
        row = []
        for j in range(0, width, grid_x):
            row.append(image.crop((j, i, j + grid_x, i + grid_y)))
        patches.append(row)
    return patches


def best_grid(size: tuple[int, int], max_slice_nums: int = 9, scale_resolution: int = 448,
              never_split: bool = False, genai: bool = False) -> tuple[int, int] | None:
    """The (cols, rows) grid ``slice_image`` picks for an image of ``size`` = (W, H); None = no slicing."""
    width, height = size
    log = (lambda x: float(np.log(np.float32(x), dtype=np.float32))) if genai else math.log
    num = np.float32 if genai else float
    log_ratio = log(num(width) / num(height))
    ratio = num(width) * num(height) / num(scale_resolution * scale_resolution)
    multiple = min(math.ceil(ratio), max_slice_nums)
    if multiple <= 1 or never_split:
        return None
    candidate_nums = [i for i in (multiple - 1, multiple, multiple + 1) if i != 1 and i <= max_slice_nums]
    candidate_grids = []
    for n in candidate_nums:
        for m in range(1, n + 1):
            if n % m == 0:
                candidate_grids.append((m, n // m))
    grid, min_error = (1, 1), float("inf")
    for g in candidate_grids:
        error = abs(num(log_ratio) - num(log(num(g[0]) / num(g[1]))))
        if error < min_error:  # strict: the first grid wins ties
            grid, min_error = g, error
    return grid


def slice_sizes(size: tuple[int, int], max_slice_nums: int = 9, scale_resolution: int = 448, patch_size: int = 14,
                genai: bool = False) -> tuple[tuple[int, int], tuple[int, int] | None, tuple[int, int] | None]:
    """What ``slice_image`` makes of a W x H image, without pixels: (source size, grid, slice size)."""
    grid = best_grid(size, max_slice_nums, scale_resolution, genai=genai)
    if grid is None:
        return find_best_resize(size, scale_resolution, patch_size, allow_upscale=True, genai=genai), None, None
    refine = get_refine_size(size, grid, scale_resolution, patch_size, allow_upscale=True, genai=genai)
    return (find_best_resize(size, scale_resolution, patch_size, genai=genai), grid,
            (refine[0] // grid[0], refine[1] // grid[1]))


def slice_image(image: Image.Image, max_slice_nums: int = 9, scale_resolution: int = 448,
                patch_size: int = 14, never_split: bool = False, genai: bool = False) -> SlicedImage:
    """The original ``slice_image``: the source image and, for images larger than
    ``scale_resolution**2`` in area, the grid of patches. ``genai``: openvino.genai's arithmetic (module doc)."""
    if image.width < 1 or image.height < 1:
        raise InputError(f"image of size {image.width}x{image.height} is empty", fix="use a non-empty image")
    grid = best_grid(image.size, max_slice_nums, scale_resolution, never_split, genai)
    if grid is None:
        # no slices: the source is resized (up or down) to about scale_resolution**2
        best_size = find_best_resize(image.size, scale_resolution, patch_size, allow_upscale=True, genai=genai)
        return SlicedImage(source=image.resize(best_size, BICUBIC))
    # source: down-sampled only
    best_resize = find_best_resize(image.size, scale_resolution, patch_size, genai=genai)
    source = image.copy().resize(best_resize, BICUBIC)
    refine_size = get_refine_size(image.size, grid, scale_resolution, patch_size, allow_upscale=True, genai=genai)
    refine_image = image.resize(refine_size, BICUBIC)
    return SlicedImage(source=source, patches=split_to_patches(refine_image, grid), grid=grid)


def to_pixel_values(img: Image.Image) -> np.ndarray:
    """float32 [3, H, W]: RGB, /255, then (x - 0.5) / 0.5 (ToTensor + Normalize(0.5, 0.5) of the original)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    x = np.asarray(img, dtype=np.uint8).astype(np.float32) / np.float32(255.0)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as RGB; a missing or unreadable file raises ``InputError`` (one line)."""
    path = Path(path)
    fix = "pass the path of a readable JPEG/PNG/WebP image"
    if not path.exists():
        raise InputError(f"image {path} does not exist", fix=fix)
    if not path.is_file():
        raise InputError(f"image {path} is not a file", fix=fix)
    try:
        with Image.open(path) as im:
            im.load()
            img = im.convert("RGB")
    except Image.DecompressionBombError as e:
        raise InputError(f"image {path.name} is too large ({_one_line(e)})", fix="resize the image") from None
    except (OSError, ValueError, SyntaxError) as e:  # UnidentifiedImageError is an OSError
        raise InputError(f"image {path.name} is unreadable ({_one_line(e)})", fix=fix) from None
    if img.width < 1 or img.height < 1:
        raise InputError(f"image {path.name} is empty ({img.width}x{img.height})", fix=fix)
    return img


def _one_line(e: BaseException) -> str:
    s = " ".join(str(e).split())
    return s if s else type(e).__name__
