"""The one place generated images are drawn from: backgrounds, shapes and words (PIL).

The generated question-answering task (``vqa_task``) and the builtin calibration set
(``ovexport.calibration.builtin``) compose their scenes from these. Every function draws from the ``random.Random``
it is given, so a scene is deterministic for a seed.
"""
from __future__ import annotations

import math
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SHAPES = ("circle", "square", "triangle", "star")


# ------------------------------------------------------------------------------------------ backgrounds
def calm_background(rng: random.Random, size: tuple[int, int]) -> tuple[Image.Image, list]:
    """A low-saturation background (flat grey, two-tone grey gradient or faint noise, slightly tinted), so a
    colour name always means an object's colour, and the parameters it was drawn with (part of a scene's key;
    ``params[1]`` is the main grey level)."""
    w, h = size
    kind = rng.choice(("flat", "gradient", "noise"))
    g1, g2 = rng.randint(40, 215), rng.randint(40, 215)
    tint = [rng.randint(-12, 12) for _ in range(3)]

    def grey(v: int) -> tuple[int, int, int]:
        return tuple(max(0, min(255, v + t)) for t in tint)

    img = Image.new("RGB", size, grey(g1))
    params: list = [kind, g1, g2, tint]
    if kind == "gradient":
        d = ImageDraw.Draw(img)
        vertical = rng.random() < 0.5
        n = h if vertical else w
        for i in range(n):
            c = grey(round(g1 + (g2 - g1) * i / max(1, n - 1)))
            d.line([(0, i), (w, i)] if vertical else [(i, 0), (i, h)], fill=c)
        params.append(vertical)
    elif kind == "noise":
        seed = rng.getrandbits(32)
        amp = rng.randint(4, 12)
        noise = np.random.default_rng(seed).integers(-amp, amp + 1, size=(h, w, 1))
        base = np.array(grey(g1), dtype=np.int64)
        img = Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8), "RGB")
        params += [seed, amp]
    return img, params


def colour_gradient(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A linear or radial gradient between two random colours (drawn at 64x64, resized)."""
    c0 = [rng.randrange(256) for _ in range(3)]
    c1 = [rng.randrange(256) for _ in range(3)]
    small = Image.new("RGB", (64, 64))
    px = small.load()
    radial = rng.random() < 0.5
    angle = rng.uniform(0, math.pi)
    for y in range(64):
        for x in range(64):
            if radial:
                t = min(1.0, math.hypot(x - 32, y - 32) / 45)
            else:
                t = (math.cos(angle) * x + math.sin(angle) * y) / 64 / (abs(math.cos(angle)) + abs(math.sin(angle)))
                t = min(1.0, max(0.0, t))
            px[x, y] = tuple(int(a + (b - a) * t) for a, b in zip(c0, c1))
    return small.resize(size, Image.Resampling.BILINEAR)


# ------------------------------------------------------------------------------------------ shapes
def star_points(cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """A five-pointed star of outer radius ``r`` (inner 0.45 r), one point up."""
    pts = []
    for k in range(10):
        rr = r if k % 2 == 0 else r * 0.45
        a = -math.pi / 2 + k * math.pi / 5
        pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
    return pts


def draw_shape(d: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill,
               outline=None, width: int = 1) -> None:
    """One of ``SHAPES`` centred at (cx, cy), of radius ~``r``, filled with ``fill`` (a colour or, on an ``L``
    image, a label), with an ``outline`` of ``width`` pixels when given."""
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline, width=width)
    elif shape == "square":
        s = r * 0.88
        d.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill, outline=outline, width=width)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx + r * 1.05, cy + r * 0.85), (cx - r * 1.05, cy + r * 0.85)], fill=fill,
                  outline=outline, width=width)
    elif shape == "star":
        d.polygon(star_points(cx, cy, r * 1.15), fill=fill, outline=outline, width=width)
    else:
        raise ValueError(shape)


# ------------------------------------------------------------------------------------------ words
def font(size: int) -> ImageFont.ImageFont:
    """Pillow's bundled font at ``size`` pixels."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size only
        return ImageFont.load_default()


def _stroke(size: int, bold: bool) -> int:
    return max(1, size // 14) if bold else 0


def word_box(d: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int,
             bold: bool = True) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) that ``draw_word`` inks for ``text`` at ``xy``."""
    return d.textbbox(xy, text, font=font(size), stroke_width=_stroke(size, bold))


def draw_word(d: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, size: int, fill,
              bold: bool = True) -> None:
    """``text`` at ``xy`` in letters ``size`` pixels high, thickened by a stroke of its own colour when ``bold``."""
    stroke = _stroke(size, bold)
    if stroke:
        d.text(xy, text, fill=fill, font=font(size), stroke_width=stroke, stroke_fill=fill)
    else:
        d.text(xy, text, fill=fill, font=font(size))
