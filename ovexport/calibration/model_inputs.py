"""Calibration inputs of each IR, as an ``nncf.Dataset`` for data-aware weight compression.

- ``text_embeddings``: ``input_ids`` [1, L] of each sample's chat prompt.
- ``image_encoder``: for each of its IRs (``ir_files_of``), the inputs it gets for every image piece fed to the
  encoder (the pieces the family's preprocessing makes of each sample's image, one piece per item); every sample's
  first piece first, then the other pieces round-robin, so that a ``subset_size`` smaller than the number of pieces
  still sees every sample.
- ``llm`` (stateful): the inputs of a prefill of each prompt, built like the runtime does
  (``runtime.prefill``: text embeddings IR x ``embed_scale``, image-encoder IR features merged in by the family's
  adapter, at its position ids),
  each followed by a few greedy decode steps (the stateful IR run on the prefill). NNCF resets the model
  state before every item unless the item carries ``nncf.definitions.NNCF_DATASET_RESET_STATE_KEY``: prefill
  items carry ``True`` and decode items ``False``, so that the decode steps see the KV cache of their prefill
  (the way optimum-intel's ``InferRequestWrapper`` records generation).

Decode steps are left out (prefill items only, no reset key) when GPTQ is on: NNCF's GPTQ runs a layer-wise
engine on *extracted, stateless* sub-models (every ``ReadValue`` replaced by its initial value, an empty
cache) and raises "Cannot reset state of a stateless model" on the key; a decode step would anyway be
computed there against an empty cache. They are also left out when NNCF has no reset key (< 2.20) and when
``subset_size`` leaves no room: NNCF uses the FIRST ``subset_size`` items, so the items are planned to fit.
"""
from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ovexport.errors import InputError, PlanError
from ovexport.models import positions
from ovexport.parts import PART_KEYS, ir_files_of, part as part_named
from ovexport.runtime.prefill import piece_alone, prefill_embeddings

from .sample import CalibrationSample
from .samples import Log, recipe_samples

# greedy decode steps recorded after each prefill (fewer when subset_size leaves no room)
MAX_DECODE_STEPS = 3
# calibration activations are computed in f32 (as NNCF's own statistics engine does)
OV_CONFIG = {"INFERENCE_PRECISION_HINT": "f32"}
LLM_OV_CONFIG = {**OV_CONFIG, "KV_CACHE_PRECISION": "f32"}
TEXT, LLM, IMAGE = (part_named(k) for k in ("text_embeddings", "llm", "image_encoder"))


def reset_state_key() -> str | None:
    """NNCF's per-item state-reset key, or None when this NNCF has none."""
    try:
        from nncf.definitions import NNCF_DATASET_RESET_STATE_KEY
    except ImportError:
        return None
    return NNCF_DATASET_RESET_STATE_KEY


def plan_decode_steps(policy: Any, num_samples: int, subset_size: int, requested: int | None = None) -> int:
    """Decode steps per sample: ``requested`` (default MAX_DECODE_STEPS), 0 for GPTQ or without NNCF's reset key,
    and at most what keeps ``num_samples * (1 + steps) <= subset_size``."""
    steps = MAX_DECODE_STEPS if requested is None else max(0, int(requested))
    if policy is not None and getattr(policy, "gptq", False):
        return 0
    if reset_state_key() is None:
        return 0
    return max(0, min(steps, subset_size // max(1, num_samples) - 1))


def _need(inputs: dict[str, Path], artifact: str, part: str) -> Path:
    path = inputs.get(artifact)
    if path is None:
        raise PlanError(f"data-aware compression of {part} needs the '{artifact}' artifact, which this run lacks",
                        fix="keep the step that produces it (e.g. 'download' for the checkpoint) in the recipe's steps")
    return Path(path)


def _compile(core, path: Path, config: dict):
    if not path.is_file():
        raise PlanError(f"{path} is missing", fix="re-run the conversion steps (ovexport run --force ...)")
    return core.compile_model(path, "CPU", config)


class _Encoders:
    """The text-embeddings IR and the image encoder's IR(s), compiled, with the runtime's numpy wrappers."""

    def __init__(self, core, inputs: dict[str, Path], part: str, family, config, record=None):
        from ovexport.runtime.image_encoder import image_encoder_for, requests_infer

        self.text = _compile(core, _need(inputs, TEXT.source_artifact, part) / TEXT.ir_file, OV_CONFIG)
        self.text_req = self.text.create_infer_request()
        image_dir = _need(inputs, IMAGE.source_artifact, part)
        self.image = {xml: _compile(core, image_dir / xml, OV_CONFIG) for xml in ir_files_of(family, IMAGE.key)}
        self.image_req = {xml: m.create_infer_request() for xml, m in self.image.items()}
        self.image_encoder = image_encoder_for(family, config, requests_infer(self.image_req), record)

    def embed(self, ids: np.ndarray) -> np.ndarray:
        self.text_req.infer({"input_ids": np.asarray(ids, dtype=np.int64)})
        return self.text_req.get_output_tensor(0).data.copy()

    def embed_scaled(self, scale: np.float32):
        return lambda ids: self.embed(ids) * scale


def text_embeddings_items(prepared: Sequence[Any]) -> list[dict[str, np.ndarray]]:
    return [{"input_ids": np.asarray(p.input_ids, dtype=np.int64)[None]} for p in prepared]


class _Recorded(Exception):
    """Raised once the IR being calibrated has been given its inputs: nothing after it needs to run."""


def image_encoder_items(prepared: Sequence[Any], adapter, encoders_for, ir: str) -> list[dict[str, np.ndarray]]:
    """The inputs of image-encoder IR ``ir`` for every image piece fed to the encoder, one piece per item: every
    sample's first piece (its source image) first, then the other pieces round-robin. ``encoders_for(record)``
    builds the image encoder; the IRs before ``ir`` run (their outputs are its inputs), ``ir`` itself and those
    after it do not. Each piece is batched alone by the family's adapter (``encoder_inputs``)."""
    per_sample = [[(p, px) for px in p.pixel_values] for p in prepared]
    order = [pieces[0] for pieces in per_sample if pieces]
    rest = [pieces[1:] for pieces in per_sample]
    for k in range(max((len(r) for r in rest), default=0)):
        order.extend(r[k] for r in rest if k < len(r))
    items: list[dict[str, np.ndarray]] = []

    def record(xml: str, inputs: dict[str, np.ndarray]) -> None:
        if xml == ir:
            items.append({k: np.array(v) for k, v in inputs.items()})
            raise _Recorded

    encoder = encoders_for(record).image_encoder
    for p, px in order:
        batch = piece_alone(adapter, p, px)
        try:
            encoder.encode(batch.inputs)
        except _Recorded:
            continue
        raise ValueError(f"the image encoder never ran {ir}: not one of its IRs")
    return items


def llm_inputs(embeds: np.ndarray, position_ids: np.ndarray, past: int = 0) -> dict[str, np.ndarray]:
    """One stateful LLM call of batch 1: ``embeds`` [1, T, D] at ``position_ids`` (already batched) after ``past``
    cached positions."""
    t = embeds.shape[1]
    return {"inputs_embeds": np.ascontiguousarray(embeds, dtype=np.float32),
            "attention_mask": np.ones((1, past + t), np.int64),
            "position_ids": np.ascontiguousarray(position_ids, dtype=np.int64),
            "beam_idx": np.zeros(1, np.int32)}


def language_model_items(prepared: Sequence[Any], adapter, inputs: dict[str, Path], decode_steps: int = 0,
                         log: Log | None = None) -> list[dict[str, Any]]:
    """Prefill inputs of each prompt (+ ``decode_steps`` greedy decode inputs each, with NNCF's reset key)."""
    import openvino as ov

    core = ov.Core()
    enc = _Encoders(core, inputs, LLM.key, family_of(inputs, LLM.key), adapter.config)
    embed_text = enc.embed_scaled(np.float32(adapter.embed_scale))
    key = reset_state_key() if decode_steps > 0 else None
    lm_req = None
    if key is not None:
        lm = _compile(core, _need(inputs, LLM.source_artifact, LLM.key) / LLM.ir_file, LLM_OV_CONFIG)
        lm_req = lm.create_infer_request()
    eos = set(getattr(adapter, "eos_ids", ()) or ())
    items: list[dict[str, Any]] = []
    for p in prepared:
        emb = prefill_embeddings(adapter, p, embed_text, enc.image_encoder.encode)
        pos = adapter.position_ids(p)
        x = llm_inputs(emb, positions.batched(pos))
        if key is None:
            items.append(x)
            continue
        items.append({**x, key: True})
        lm_req.reset_state()
        lm_req.infer(x)
        t, start, rows = emb.shape[1], positions.next_position(pos), positions.rows_of(pos)
        for k in range(decode_steps):
            tok = int(lm_req.get_tensor("logits").data[0, -1].argmax())
            if tok in eos:
                break
            x = llm_inputs(embed_text(np.array([[tok]], np.int64)), positions.step(start + k, 1, rows), t + k)
            items.append({**x, key: False})
            lm_req.infer(x)
    del enc, lm_req
    gc.collect()
    return items


def prepare_samples(adapter, samples: Sequence[CalibrationSample]) -> list[Any]:
    """Each sample as a one-turn chat (question + image), prepared by the model family's runtime adapter."""
    out = []
    for s in samples:
        try:
            out.append(adapter.prepare([{"role": "user", "content": s.question}], s.image))
        except InputError as exc:
            raise InputError(f"calibration sample {s.origin or s.question!r}: {exc.what}", fix=exc.fix) from None
    return out


def family_of(inputs: dict[str, Path], part: str):
    from ovexport.models.registry import family_for
    return family_for(_need(inputs, "checkpoint", part))


def calibration_items(recipe, part: str, inputs: dict[str, Path], log: Log | None = None,
                      decode_steps: int | None = None, ir: str | None = None) -> list[dict[str, Any]]:
    """The model inputs of ``part`` (a key of ``ovexport.parts``) for NNCF; ``ir``: which of the part's IRs
    (``ir_files_of``), when the family splits it (default: its first)."""
    import openvino as ov

    if part not in PART_KEYS:
        raise ValueError(f"unknown part {part!r}; expected one of {', '.join(PART_KEYS)}")
    log = log or (lambda msg: None)
    subset = recipe.calibration.subset_size if recipe.calibration is not None else 128
    samples = recipe_samples(recipe, log)
    if len(samples) > subset and part != IMAGE.key:
        log(f"using the first {subset} of {len(samples)} calibration samples (calibration.subset_size)")
        samples = samples[:subset]
    ckpt = _need(inputs, "checkpoint", part)
    family = family_of(inputs, part)
    adapter = family.runtime(ckpt)
    prepared = prepare_samples(adapter, samples)
    if part == TEXT.key:
        items = text_embeddings_items(prepared)
        log(f"calibration of {part}: {len(items)} prompts")
    elif part == IMAGE.key:
        ir = ir or ir_files_of(family, part)[0]
        core = ov.Core()
        items = image_encoder_items(prepared, adapter,
                                    lambda record: _Encoders(core, inputs, part, family, adapter.config, record), ir)
        log(f"calibration of {part} ({ir}): {len(items)} image pieces from {len(samples)} samples"
            + (f", NNCF uses the first {subset}" if len(items) > subset else ""))
    else:
        policy = recipe.compression.parts().get(part)
        steps = plan_decode_steps(policy, len(samples), subset, decode_steps)
        items = language_model_items(prepared, adapter, inputs, steps, log)
        log(f"calibration of {part}: {len(samples)} prefills + {len(items) - len(samples)} decode steps")
    return items


def calibration_dataset(recipe, part: str, inputs: dict[str, Path], log: Callable[[str], None] | None = None,
                        decode_steps: int | None = None, ir: str | None = None):
    """``nncf.Dataset`` of ``part``'s calibration inputs (see the module doc)."""
    import nncf

    return nncf.Dataset(calibration_items(recipe, part, inputs, log, decode_steps, ir))
