"""The inputs openvino.genai feeds a ``minicpmv`` folder's vision IRs, built in numpy: ovexport's runtime, the
validators and calibration feed the two IRs exactly what ``VLMPipeline`` does (see :mod:`.genai_vision`)."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from ovexport.bundle.layout import RESAMPLER, VISION_EMBEDDINGS

from .genai_vision import POSITION_BUCKETS

Infer = Callable[[str, Mapping[str, np.ndarray]], np.ndarray]   # (xml file, inputs) -> first output


def patch_strip(pixel_values: np.ndarray, patch: int) -> np.ndarray:
    """[N, 3, H, W] (sides multiples of ``patch``) -> [N, 3, patch, (H/p)*(W/p)*patch]: the patches side by side,
    row-major, each keeping its rows (genai's ``preprocess_for_encoder``)."""
    n, c, hh, ww = pixel_values.shape
    h, w = hh // patch, ww // patch
    x = pixel_values.reshape(n, c, h, patch, w, patch).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(x.reshape(n, c, patch, h * w * patch), dtype=np.float32)


def vision_position_ids(h: int, w: int, buckets: int = POSITION_BUCKETS) -> np.ndarray:
    """[h*w] int64: ``bucket(row) * S + bucket(col)``, buckets counted in float32 as genai does."""
    bounds = np.arange(1, buckets, dtype=np.float32) / np.float32(buckets)
    bh = np.searchsorted(bounds, np.arange(h, dtype=np.float32) / np.float32(h), side="right")
    bw = np.searchsorted(bounds, np.arange(w, dtype=np.float32) / np.float32(w), side="right")
    return (bh[:, None] * buckets + bw[None, :]).reshape(-1).astype(np.int64)


def sincos_2d(dim: int, h: int, w: int) -> np.ndarray:
    """[h*w, dim] float32: the MAE 2-D table (first half of the channels the column, second half the row)."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float32) / np.float32(dim / 4))
    cols, rows = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def one(pos: np.ndarray) -> np.ndarray:
        out = pos.reshape(-1)[:, None] * omega[None, :]
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    return np.concatenate([one(cols), one(rows)], axis=1).astype(np.float32)


def vision_inputs(pixel_values: np.ndarray, patch: int) -> dict[str, np.ndarray]:
    """Inputs of ``openvino_vision_embeddings_model.xml`` for N same-size images (no padding needed)."""
    n, _, hh, ww = pixel_values.shape
    h, w = hh // patch, ww // patch
    return {"pixel_values": patch_strip(pixel_values, patch),
            "patch_attention_mask": np.ones((n, 1, h * w), np.float32),
            "position_ids": np.broadcast_to(vision_position_ids(h, w), (n, h * w)).copy()}


def resampler_inputs(features: np.ndarray, grid: tuple[int, int], dim: int) -> dict[str, np.ndarray]:
    """Inputs of ``openvino_resampler_model.xml`` for N images' features [N, h*w, width] of one grid."""
    n, length = features.shape[:2]
    table = sincos_2d(dim, *grid)
    return {"image_feature": np.ascontiguousarray(features, dtype=np.float32),
            "pos_embed": np.ascontiguousarray(np.broadcast_to(table[:, None, :], (length, n, dim))),
            "key_padding_mask": np.zeros((n, length), np.float32)}


class GenaiImageEncoder:
    """The vision-embeddings and resampler IRs as one image encoder: [N, 3, H, W] same-size images -> [N, Q, D].

    ``infer(xml, inputs)`` runs one IR (compiled by the caller); ``record``, when given, receives every IR's inputs
    (calibration datasets are built from them).
    """

    irs = (VISION_EMBEDDINGS, RESAMPLER)

    def __init__(self, infer: Infer, patch: int, dim: int,
                 record: Callable[[str, dict[str, np.ndarray]], None] | None = None):
        self.infer, self.patch, self.dim, self.record = infer, patch, dim, record

    def _run(self, xml: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
        if self.record is not None:
            self.record(xml, inputs)
        return self.infer(xml, inputs)

    def encode(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One ``ImageBatch``'s inputs (``pixel_values`` [N, 3, H, W], ``tgt_size``) -> [N, Q, D]."""
        h, w = (int(v) for v in np.asarray(inputs["tgt_size"]))
        px = np.asarray(inputs["pixel_values"], dtype=np.float32)
        if px.shape[-2:] != (h * self.patch, w * self.patch):   # sides not multiples of the patch: pad as timm
            padded = np.zeros((*px.shape[:2], h * self.patch, w * self.patch), np.float32)
            padded[..., :px.shape[-2], :px.shape[-1]] = px
            px = padded
        feats = self._run(VISION_EMBEDDINGS, vision_inputs(px, self.patch))
        return self._run(RESAMPLER, resampler_inputs(feats, (h, w), self.dim))


def genai_prepare(tokenizer, config, msgs, image):
    """What ``VLMPipeline`` feeds the model for the chat ``msgs`` about ``image``: the image sized by genai's slicer
    arithmetic (``slice_image(genai=True)``) and the prompt laid out as genai lays it out (``genai_prepared``)."""
    from .prompt import encode_chat

    prepared = encode_chat(tokenizer, msgs, image, config=config, genai_slicing=True)
    return genai_prepared(prepared, tokenizer, int(config.query_num))


def genai_prepared(prepared, tokenizer, query_num: int):
    """The prompt ``VLMPipeline`` builds for the same chat: V-2's ``prepared`` with its slices laid out as genai's
    MiniCPM code lays them out (for 2.6). The one place genai's code cannot express V-2:

    - V-2:   ``<image>U</image><slice><image>U</image><image>U</image>\\n<image>U</image>...</slice>``
    - genai: ``<image>U</image><slice>U</slice><slice>U</slice>\\n<slice>U</slice>...``

    (``U`` = ``<unk>`` x query_num, the slots the features fill). genai finds each slice's slots after a
    ``<slice>`` token, so the V-2 layout cannot be passed through it (docs/genai.md). An image that is not sliced
    gets the same prompt in both. Returns ``prepared`` itself when nothing differs.
    """
    from dataclasses import replace

    from .prompt import SLICE_END, SLICE_START, UNK, grid_placeholder, image_bounds

    if prepared.grid is None:
        return prepared
    cols, rows = prepared.grid
    v2 = grid_placeholder(prepared.grid, query_num)
    genai = "\n".join((SLICE_START + UNK * query_num + SLICE_END) * cols for _ in range(rows))
    prompt = prepared.prompt.replace(v2, genai, 1)
    ids = np.asarray(tokenizer.encode(prompt, add_bos=True), dtype=np.int64)
    # the features fill the slots between <image> and </image>, and between each <slice> and its </slice>
    as_image = np.where(ids == tokenizer.slice_start_id, tokenizer.im_start_id, ids)
    as_image = np.where(as_image == tokenizer.slice_end_id, tokenizer.im_end_id, as_image)
    bounds = image_bounds(as_image, tokenizer.im_start_id, tokenizer.im_end_id)
    return replace(prepared, input_ids=ids, image_bounds=bounds, prompt=prompt)
