"""What the parity checks feed MiniCPM-V-2: image-encoder cases at the sizes and branches that matter to its
SigLIP tower and slicer, and the end-to-end images (unsliced, and sliced in two grids)."""
from __future__ import annotations

import numpy as np

from ovexport.models.interface import ValidationCases
from ovexport.synthetic.images import random_pixels, synthetic_image

from .model_inputs import encoder_batch_inputs

# name -> (H, W) of random-pixel images fed to the image encoder
IMAGE_SIZES = {
    "448x448": (448, 448),         # the trace size (32x32 patch grid), a no-slice source image
    "378x378": (378, 378),         # 27x27: timm skips the position-embedding resize there
    "tiny_14x14": (14, 14),        # a single patch
    "padded_100x150": (100, 150),  # sides that are not multiples of 14 (dynamic_img_pad)
}
# (W, H) of an image the slicer cuts 3x1: its source, the transposed image's source and the three slices as ONE
# batch (as the runtime sends them); source 252x798, slices 434x462
SLICED_IMAGE = (1600, 500)
SLICE_BATCH_FALLBACK = (434, 462)   # (H, W) of a random batch of 3 when the slicer does not cut in 3 (tiny configs)

VALIDATION_CASES = ValidationCases(
    end_to_end={
        "448x448": (448, 448, None),      # no slicing
        "1344x896": (1344, 896, (3, 2)),  # source + 6 slices
        "896x448": (896, 448, (2, 1)),    # source + 2 slices, one row
    },
    prompt_image=(448, 448),              # unsliced: the prompt holds one image
    pixel_range=(-1.0, 1.0),
)


def image_encoder_cases(prepare, rng: np.random.Generator, patch: int) -> dict[str, dict[str, np.ndarray]]:
    """name -> one encoder call's inputs (``pixel_values`` [N, 3, H, W] + ``tgt_size``)."""
    lo_hi = VALIDATION_CASES.pixel_range
    cases = {name: random_pixels(rng, 1, h, w, lo_hi) for name, (h, w) in IMAGE_SIZES.items()}
    msgs = [{"role": "user", "content": "What is in the image?"}]
    w, h = SLICED_IMAGE
    wide = prepare(msgs, synthetic_image(rng, w, h))
    tall = prepare(msgs, synthetic_image(rng, h, w))
    cases["wide_source"] = wide.pixel_values[0][None]
    cases["tall_source"] = tall.pixel_values[0][None]
    slices = wide.pixel_values[1:]
    if len(slices) >= 3 and len({s.shape for s in slices}) == 1:
        cases["slices_batch3"] = np.stack(slices[:3])
    else:
        cases["slices_batch3"] = random_pixels(rng, 3, *SLICE_BATCH_FALLBACK, lo_hi)
    return {name: encoder_batch_inputs(px, patch) for name, px in cases.items()}
