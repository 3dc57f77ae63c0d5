"""The three compiled IRs of a bundle, with thin numpy-in / numpy-out wrappers."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ovexport.bundle.layout import IMAGE_ENCODER, LANGUAGE_MODEL, TEXT_EMBEDDINGS
from ovexport.errors import BundleError

# what the CPU plugin should do for one interactive user: one stream, latency first
CPU_DEFAULTS = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}


def parse_ov_config(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> dict; a pair without ``=`` is an error naming it."""
    from ovexport.errors import InputError

    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise InputError(f"--ov-config {p!r} is not KEY=VALUE", fix="write e.g. --ov-config INFERENCE_PRECISION_HINT=f32")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class BundleModels:
    def __init__(self, bundle: Path, device: str = "CPU", ov_config: Mapping[str, str] | None = None):
        import openvino as ov

        bundle = Path(bundle)
        for name in (TEXT_EMBEDDINGS, LANGUAGE_MODEL, IMAGE_ENCODER):
            if not (bundle / name).is_file() or not (bundle / (name[:-4] + ".bin")).is_file():
                raise BundleError(f"{bundle} has no {name}", fix="pass the directory of a bundle written by `ovexport run`")
        config = dict(CPU_DEFAULTS) if device.upper().startswith("CPU") else {}
        config.update(ov_config or {})
        self.core = ov.Core()
        self.device, self.config = device, config
        self.text = self.core.compile_model(bundle / TEXT_EMBEDDINGS, device, config)
        self.image = self.core.compile_model(bundle / IMAGE_ENCODER, device, config)
        self.lm = self.core.compile_model(bundle / LANGUAGE_MODEL, device, config)
        self.text_req = self.text.create_infer_request()
        self.image_req = self.image.create_infer_request()
        self.lm_req = self.lm.create_infer_request()

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """[B, T] ids -> [B, T, D] unscaled embeddings."""
        self.text_req.infer({"input_ids": np.asarray(ids, dtype=np.int64)})
        return self.text_req.get_output_tensor(0).data.copy()

    def encode_images(self, pixel_values: np.ndarray, tgt_size: tuple[int, int]) -> np.ndarray:
        """[N, 3, H, W] same-size images in one infer call -> [N, Q, D]."""
        self.image_req.infer({"pixel_values": np.ascontiguousarray(pixel_values, dtype=np.float32),
                              "tgt_size": np.asarray(tgt_size, dtype=np.int64)})
        return self.image_req.get_output_tensor(0).data.copy()

    def reset(self) -> None:
        self.lm_req.reset_state()

    def lm_step(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
                beam_idx: np.ndarray) -> np.ndarray:
        """One stateful call; returns the logits of the LAST position, [B, V] (a view, copy to keep)."""
        self.lm_req.infer({"inputs_embeds": inputs_embeds, "attention_mask": attention_mask,
                           "position_ids": position_ids, "beam_idx": beam_idx})
        return self.lm_req.get_tensor("logits").data[:, -1, :]
