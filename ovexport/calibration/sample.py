"""One calibration sample: an image and a question about it. Every calibration source (builtin, local, datasets)
makes these; ``samples.py`` picks the source a recipe names."""
from __future__ import annotations

from dataclasses import dataclass

from PIL import Image


@dataclass(frozen=True)
class CalibrationSample:
    image: Image.Image     # RGB
    question: str
    origin: str = ""       # where it came from (file name, dataset row), for messages
