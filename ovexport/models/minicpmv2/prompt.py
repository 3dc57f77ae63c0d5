"""MiniCPM-V-2 chat prompt and model inputs, as the original ``MiniCPMV.chat`` builds them.

``encode_chat`` is the single entry point both the OpenVINO runtime and the PyTorch reference use, so
they see identical token ids, image bounds and pixels.

Prompt of ``[{"role": "user", "content": q1}, {"role": "assistant", "content": a1},
{"role": "user", "content": q2}]`` with an image::

    <用户>{placeholder}\\n{q1}<AI>{a1}<用户>{q2}<AI>

where ``{placeholder}`` = ``<image>`` + ``<unk>`` * 64 + ``</image>`` for the source image, followed,
when the image is sliced into cols x rows patches, by ``<slice>`` + rows joined by "\\n" + ``</slice>``
(each row = cols placeholders). No system prompt, no separators; BOS comes from the tokenizer.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ovexport.errors import InputError
from dataclasses import dataclass, field

from ovexport.models.interface import PreparedInput

from .slicing import SlicedImage, load_image, slice_image, to_pixel_values

__all__ = [
    "IM_START", "IM_END", "UNK", "SLICE_START", "SLICE_END", "USER", "AI",
    "image_placeholder", "grid_placeholder", "build_prompt", "image_bounds", "MiniCPMPrepared", "encode_chat",
]

IM_START, IM_END, UNK = "<image>", "</image>", "<unk>"
SLICE_START, SLICE_END = "<slice>", "</slice>"
USER, AI = "<用户>", "<AI>"
IM_START_ID, IM_END_ID = 101, 102


def image_placeholder(query_num: int = 64) -> str:
    """``<image>`` + ``<unk>`` * query_num + ``</image>``."""
    return IM_START + UNK * query_num + IM_END


def grid_placeholder(grid: tuple[int, int], query_num: int = 64) -> str:
    """``<slice>`` + rows joined by "\\n" + ``</slice>``; ``grid`` = (cols, rows), a row = cols placeholders."""
    cols, rows = grid
    ph = image_placeholder(query_num)
    return SLICE_START + "\n".join(ph * cols for _ in range(rows)) + SLICE_END


def _check_msgs(msgs: Sequence[Mapping[str, Any]], has_image: bool) -> None:
    fix = 'pass messages as [{"role": "user", "content": "..."}, {"role": "assistant", ...}, ...]'
    if not msgs:
        raise InputError("the conversation has no message", fix=fix)
    for i, m in enumerate(msgs):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise InputError(f"message {i} is not a dict with 'role' and 'content'", fix=fix)
        if m["role"] not in ("user", "assistant"):
            raise InputError(f"message {i} has role {m['role']!r}; MiniCPM-V-2 knows only 'user' and 'assistant'",
                             fix=fix)
        if not isinstance(m["content"], str):
            raise InputError(f"message {i} content is a {type(m['content']).__name__}, not text", fix=fix)
    if has_image and msgs[0]["role"] != "user":
        raise InputError("the first message must be the user's when an image is given", fix=fix)


def build_prompt(msgs: Sequence[Mapping[str, Any]], image_slices: SlicedImage | None, query_num: int = 64,
                 slice_mode: bool = True) -> tuple[str, list[Image.Image]]:
    """The prompt text and the images fed to the encoder ([source] + patches row-major; [] without image).

    With ``slice_mode=False`` only ``image_slices.source`` is used (one placeholder, patches ignored);
    the original then feeds the image unresized, so pass ``SlicedImage(source=image)`` for that mode.
    """
    _check_msgs(msgs, image_slices is not None)
    images: list[Image.Image] = []
    prompt = ""
    for i, msg in enumerate(msgs):
        content = msg["content"]
        if i == 0 and image_slices is not None:
            placeholder = image_placeholder(query_num)
            if slice_mode:
                images = image_slices.images
                if image_slices.patches:
                    placeholder += grid_placeholder(image_slices.grid, query_num)
            else:
                images = [image_slices.source]
            content = placeholder + "\n" + content
        prompt += (USER if msg["role"] == "user" else AI) + content
    return prompt + AI, images


def image_bounds(input_ids: Sequence[int] | np.ndarray, im_start_id: int = IM_START_ID,
                 im_end_id: int = IM_END_ID) -> np.ndarray:
    """int64 [n, 2]: start = index after each ``<image>``, end = index of each ``</image>``; the image
    features fill ``input_ids[start:end]``."""
    ids = np.asarray(input_ids).reshape(-1)
    starts = np.nonzero(ids == im_start_id)[0] + 1
    ends = np.nonzero(ids == im_end_id)[0]
    if len(starts) != len(ends) or np.any(ends < starts):
        raise InputError(f"the prompt has {len(starts)} <image> and {len(ends)} </image> tokens that do not pair up",
                         fix="do not write <image> or </image> in message text")
    return np.stack([starts, ends], axis=1).astype(np.int64) if len(starts) else np.zeros((0, 2), np.int64)


@dataclass
class MiniCPMPrepared(PreparedInput):
    """A MiniCPM-V-2 prompt: each piece's features overwrite the ``query_num`` placeholders between its ``<image>``
    and ``</image>`` (``image_bounds``, one row per piece); ``grid`` is the slices' (cols, rows), None unsliced."""

    image_bounds: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))  # int64 [n, 2]
    grid: tuple[int, int] | None = None
    patch_size: int = 14

    @property
    def layout(self) -> tuple[int, int] | None:
        return self.grid

    @property
    def tgt_sizes(self) -> list[tuple[int, int]]:
        """Patch grid (ceil(H/p), ceil(W/p)) of every piece, the image encoder's ``tgt_size`` input."""
        p = self.patch_size
        return [(-(-pv.shape[1] // p), -(-pv.shape[2] // p)) for pv in self.pixel_values]


_DEFAULTS = {"query_num": 64, "slice_mode": True, "max_slice_nums": 9, "scale_resolution": 448, "patch_size": 14}


def _param(name: str, value, config) -> Any:
    if value is not None:
        return value
    if config is not None:
        v = config.get(name) if isinstance(config, Mapping) else getattr(config, name, None)
        if v is not None:
            return v
    return _DEFAULTS[name]


def encode_chat(tokenizer, msgs: Sequence[Mapping[str, Any]], image: Image.Image | str | Path | None = None, *,
                config: Any = None, query_num: int | None = None, slice_mode: bool | None = None,
                max_slice_nums: int | None = None, scale_resolution: int | None = None,
                patch_size: int | None = None, max_inp_length: int | None = None,
                genai_slicing: bool = False) -> "MiniCPMPrepared":
    """Token ids, image bounds and pixel values of a chat, like the original ``MiniCPMV.chat``.

    ``tokenizer`` is a ``MiniCPMVTokenizer``; ``image`` a PIL image, a path, or None (text only).
    Parameters left None come from ``config`` (a ``MiniCPMV2Config`` or a config.json dict), else the
    real model's values (64, True, 9, 448, 14). ``max_inp_length``: the original truncates the ids to
    2048; here a longer prompt raises ``InputError`` instead of being cut (None = no limit).
    ``genai_slicing``: size the source and slices as openvino.genai's C++ slicer does (``slice_image``).
    """
    query_num = int(_param("query_num", query_num, config))
    slice_mode = bool(_param("slice_mode", slice_mode, config))
    max_slice_nums = int(_param("max_slice_nums", max_slice_nums, config))
    scale_resolution = int(_param("scale_resolution", scale_resolution, config))
    patch_size = int(_param("patch_size", patch_size, config))

    sliced = None
    if image is not None:
        if isinstance(image, (str, Path)):
            image = load_image(image)
        elif image.mode != "RGB":
            image = image.convert("RGB")
        if slice_mode:
            sliced = slice_image(image, max_slice_nums, scale_resolution, patch_size, genai=genai_slicing)
        else:
            sliced = SlicedImage(source=image)  # the original feeds the image as is when not slicing
    prompt, images = build_prompt(msgs, sliced, query_num=query_num, slice_mode=slice_mode)
    ids = np.asarray(tokenizer.encode(prompt, add_bos=True), dtype=np.int64)
    if max_inp_length is not None and len(ids) > max_inp_length:
        raise InputError(f"the prompt is {len(ids)} tokens, more than the limit of {max_inp_length}",
                         fix="shorten the conversation or raise the limit")
    bounds = image_bounds(ids, tokenizer.im_start_id, tokenizer.im_end_id)
    if len(bounds) != len(images):
        raise InputError(f"the prompt has {len(bounds)} image placeholders for {len(images)} images",
                         fix="do not write <image> or </image> in message text")
    bad = [int(e - s) for s, e in bounds if e - s != query_num]
    if bad:
        raise InputError(f"an image placeholder holds {bad[0]} tokens instead of {query_num}",
                         fix="do not write <image>, </image> or <unk> in message text")
    return MiniCPMPrepared(input_ids=ids, image_bounds=bounds, pixel_values=[to_pixel_values(im) for im in images],
                         grid=sliced.grid if (sliced is not None and slice_mode) else None, prompt=prompt,
                         patch_size=patch_size)
