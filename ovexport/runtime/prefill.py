"""The one way a prompt becomes the LLM's prefill input, shared by the runtime, the validators, teacher forcing
(evaluation) and calibration: the family's adapter says how its image pieces are encoded
(``encoder_inputs``), where their features go (``merge``) and the prompt's positions (``position_ids``)."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

import numpy as np

Encode = Callable[[Mapping[str, np.ndarray]], np.ndarray]        # one ImageBatch's inputs -> [N, Q, D]
EmbedText = Callable[[np.ndarray], np.ndarray]                    # [1, T] ids -> [1, T, D] (scaled) embeddings


def encode_pieces(adapter, prepared, encode: Encode) -> list[np.ndarray]:
    """The features of every image piece of ``prepared``, one encoder call per ``ImageBatch``."""
    out: list[np.ndarray | None] = [None] * len(prepared.pixel_values)
    for batch in adapter.encoder_inputs(prepared):
        feats = encode(batch.inputs)
        for j, i in enumerate(batch.pieces):
            out[i] = feats[j]
    missing = [i for i, f in enumerate(out) if f is None]
    if missing:
        raise ValueError(f"the family's encoder_inputs left image pieces {missing} out")
    return out  # type: ignore[return-value]


def piece_alone(adapter, prepared, piece: np.ndarray):
    """The one ``ImageBatch`` that encodes ``piece`` (one of ``prepared.pixel_values``) on its own, as the family's
    adapter makes it (calibration records pieces one by one; the notebook baseline encodes them so)."""
    (batch,) = adapter.encoder_inputs(dataclasses.replace(prepared, pixel_values=[piece]))
    return batch


def prefill_embeddings(adapter, prepared, embed_text: EmbedText, encode: Encode | None = None,
                       features: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """``[1, T, D]``: the scaled text embeddings with the image features merged in; ``features`` (of an earlier
    turn) are used as they are, otherwise the pieces are encoded with ``encode``."""
    emb = embed_text(np.asarray(prepared.input_ids, dtype=np.int64)[None])
    if len(prepared.pixel_values):
        if features is None:
            if encode is None:
                raise ValueError("the prompt has an image and neither features nor an encoder were given")
            features = encode_pieces(adapter, prepared, encode)
        emb = adapter.merge(prepared, emb, features)
    return emb
