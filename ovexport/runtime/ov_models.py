"""The compiled IRs of a bundle (text embeddings, the image encoder's IR or IRs, the stateful LLM), with thin
numpy-in / numpy-out wrappers."""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ovexport.bundle.layout import LANGUAGE_MODEL, TEXT_EMBEDDINGS, ir_files
from ovexport.errors import BundleError, InputError, one_line

# What the CPU plugin should do for one interactive user: one stream, latency first. Precisions are left to
# the plugin (bf16 compute and a u8 KV cache on CPUs with AVX512-BF16/AMX). Measured on the full-size int4
# bundle (benchmarks/bench_llm_ab.py, 2 cores, 484-token prompt): u8 and f16 KV caches decode at the same speed
# (~200 ms/token), and u8 holds half the memory, so the plugin's u8 default stays. Parity checks pin
# INFERENCE_PRECISION_HINT=f32 and KV_CACHE_PRECISION=f32 (PRECISION_F32) through --ov-config.
CPU_DEFAULTS = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}
# ``ov_config`` presets a user may name instead of KEY=VALUE pairs
PRECISION_F32 = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32"}


def parse_ov_config(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``["KEY=VALUE", ...]`` -> dict; a pair without ``=`` is an error naming it."""
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p or not p.split("=", 1)[0].strip():
            raise InputError(f"--ov-config {p!r} is not KEY=VALUE",
                             fix="write e.g. --ov-config INFERENCE_PRECISION_HINT=f32")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def slice_last_logits(ov_model) -> bool:
    """In place: make the LLM compute logits for the LAST position only ([B, 1, V] instead of [B, T, V]).

    Inserts ``x[:, -1:, :]`` before the ``lm_head`` MatMul that feeds the ``logits`` output (what
    openvino.genai does to its LLMs). A prefill of T tokens then skips T-1 rows of the vocabulary
    projection. Returns False, changing nothing, when the graph does not have that shape.
    """
    from openvino import opset8

    try:
        port = next(o for o in ov_model.outputs if "logits" in o.get_names())
    except StopIteration:
        return False
    node = port.get_node().input_value(0).get_node()
    while node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    if node.get_type_name() != "MatMul":
        return False
    for i in range(2):
        src = node.input_value(i)
        shape = src.get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() == 3 and shape[1].is_dynamic:
            sl = opset8.slice(src, np.array([-1], np.int64), np.array([np.iinfo(np.int64).max], np.int64),
                              np.array([1], np.int64), np.array([1], np.int64))
            node.input(i).replace_source_output(sl.output(0))
            ov_model.validate_nodes_and_infer_types()
            return True
    return False


class BundleModels:
    """Compiled text-embeddings, image-encoder and stateful LLM models of one bundle (or IR directory).

    ``ov_config`` overrides ``CPU_DEFAULTS`` (on CPU); ``cache_dir`` turns on OpenVINO's compiled-model cache
    there. ``calls`` counts infer calls per model (tests and benchmarks read it). ``family`` (default: the one
    ``config.json`` names) says which IRs hold the image encoder and how to feed them; ``model_config`` is the
    model's config as its runtime adapter reads it (default: read from ``bundle``). ``image_encoder=False``: the
    image encoder's IRs are not compiled (features come from elsewhere; ``encode_images`` is then an error).
    """

    def __init__(self, bundle: Path, device: str = "CPU", ov_config: Mapping[str, str] | None = None,
                 cache_dir: str | Path | None = None, slice_logits: bool = True, family=None, model_config=None,
                 image_encoder: bool = True):
        import openvino as ov

        from ovexport.models.registry import family_for
        from ovexport.parts import ir_files_of

        from .image_encoder import image_encoder_for, requests_infer

        bundle = Path(bundle)
        family = family or family_for(bundle)
        image_irs = ir_files_of(family, "image_encoder") if image_encoder else ()
        for name in (TEXT_EMBEDDINGS, LANGUAGE_MODEL, *image_irs):
            if not all((bundle / f).is_file() for f in ir_files(name)):
                raise BundleError(f"{bundle} has no {name}",
                                  fix="pass the directory of a bundle written by `ovexport run`")
        config: dict[str, str] = dict(CPU_DEFAULTS) if device.upper().startswith("CPU") else {}
        config.update(ov_config or {})
        if cache_dir is not None and "CACHE_DIR" not in config:
            config["CACHE_DIR"] = str(cache_dir)
        self.core = ov.Core()
        self.device, self.config = device, config
        t0 = time.perf_counter()
        try:
            self.text = self.core.compile_model(bundle / TEXT_EMBEDDINGS, device, config)
            self.image = {xml: self.core.compile_model(bundle / xml, device, config) for xml in image_irs}
            lm = self.core.read_model(bundle / LANGUAGE_MODEL)
            self.sliced_logits = bool(slice_logits) and slice_last_logits(lm)
            self.lm = self.core.compile_model(lm, device, config)
        except RuntimeError as e:
            raise InputError(f"OpenVINO could not compile the bundle on {device} with {config} ({one_line(e)})",
                             fix="check --device (see `python -c 'import openvino; print(openvino.Core()"
                                 ".available_devices)'`) and the --ov-config keys") from None
        self.compile_s = time.perf_counter() - t0
        self.text_req = self.text.create_infer_request()
        self.image_req = {xml: m.create_infer_request() for xml, m in self.image.items()}
        self.image_encoder = image_encoder_for(family, model_config or family.runtime(bundle).config,
                                               requests_infer(self.image_req)) if image_encoder else None
        self.lm_req = self.lm.create_infer_request()
        self._logits = self.lm.output("logits")
        self.calls = {"text": 0, "image": 0, "lm": 0}

    def get_property(self, key: str, model: str = "lm"):
        """A property of one compiled model (e.g. ``KV_CACHE_PRECISION``, ``INFERENCE_PRECISION_HINT``)."""
        return getattr(self, model).get_property(key)

    def embed(self, ids: np.ndarray) -> np.ndarray:
        """[B, T] ids -> [B, T, D] unscaled embeddings (a new array)."""
        self.calls["text"] += 1
        self.text_req.infer({"input_ids": np.ascontiguousarray(ids, dtype=np.int64)}, share_inputs=True)
        return self.text_req.get_output_tensor(0).data.copy()

    def encode_images(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        """One image-encoder call (an ``ImageBatch``'s inputs, from the family's adapter) -> [N, Q, D]."""
        if self.image_encoder is None:
            raise InputError("these models were compiled without the image encoder (image_encoder=False)",
                             fix="pass the image features, or open the bundle with its image encoder")
        self.calls["image"] += 1
        return self.image_encoder.encode(inputs)

    def reset(self) -> None:
        self.lm_req.reset_state()

    def trim_state(self, length: int, cached: int) -> bool:
        """Keep the first ``length`` of the ``cached`` positions in the LLM's KV cache (each state tensor cut along
        its sequence axis: the one of size ``cached``, the third of ``[B, heads, T, head_dim]`` first). False,
        changing nothing, when a state has no such axis."""
        import openvino as ov

        states = self.lm_req.query_state()
        cuts = []
        for st in states:
            shape = tuple(st.state.shape)
            axes = [a for a in range(1, len(shape)) if shape[a] == cached]
            if not axes:
                return False
            cuts.append(2 if 2 in axes else axes[0])
        for st, axis in zip(states, cuts):
            kept = np.split(st.state.data, [length], axis=axis)[0]     # a view of the first `length`
            st.state = ov.Tensor(np.ascontiguousarray(kept))
        return True

    def lm_step(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
                beam_idx: np.ndarray) -> np.ndarray:
        """One stateful call; returns the logits of the LAST position, [B, V]: a view of the output tensor,
        valid until the next call (copy to keep). Inputs are shared, not copied: pass contiguous arrays of
        the model's dtypes (float32 embeddings, int64 mask and positions, int32 beam_idx)."""
        self.calls["lm"] += 1
        self.lm_req.infer({"inputs_embeds": inputs_embeds, "attention_mask": attention_mask,
                           "position_ids": position_ids, "beam_idx": beam_idx}, share_inputs=True)
        return self.lm_req.get_tensor(self._logits).data[:, -1, :]

    def lm_all_logits(self, inputs_embeds: np.ndarray, attention_mask: np.ndarray, position_ids: np.ndarray,
                      beam_idx: np.ndarray) -> np.ndarray:
        """One stateful call returning a copy of the logits of EVERY position, [B, T, V] (teacher forcing).
        Needs models loaded with ``slice_logits=False``."""
        if self.sliced_logits:
            raise RuntimeError("the LLM computes last-position logits only: load with slice_logits=False")
        self.calls["lm"] += 1
        self.lm_req.infer({"inputs_embeds": inputs_embeds, "attention_mask": attention_mask,
                           "position_ids": position_ids, "beam_idx": beam_idx}, share_inputs=True)
        return self.lm_req.get_tensor(self._logits).data.copy()
