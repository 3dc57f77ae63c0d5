"""Memory and disk a release job of one MiniCPM-V-2 recipe needs (``ovexport matrix``), in GiB.

Disk is the build's peak, estimated from the sizes of its artifacts (nothing is deleted during a run, so the peak
is the end state; ARCHITECTURE.md, "Run cache"):

- the bf16 checkpoint (Hub cache, or the work dir for ``synthetic://full``): 6.87 GB;
- the exported IRs in ``export.weight_dtype``: text embeddings, the LLM twice (``llm_ir`` as converted and
  ``llm_stateful_ir``, each a file of its own) and the image encoder: 12.3 GB in fp16;
- ``compressed_ir``: a new file only for a compressed part (an uncompressed one is hard-linked), at the bytes per
  weight of its mode (int4: 4 bits + an fp16 scale per group for ``ratio`` of the layers, the rest and lm_head in
  the int8 backup): 2.04 GB for the int4 LLM, as measured (BENCHMARKS.md, the LLM IR's .bin);
- the bundle and the run cache: hard links, no new bytes; PyTorch reference outputs (``.work/.reference``),
  tokenizer IRs, card, logs: under :data:`EXTRAS` (the tiny build's 0.9 MB of reference outputs scale with the
  vocabulary, 120x, to about 0.1 GB).

The estimate is for the build directory (output root + Hub cache); the job's Python environment and the Hub cache
archive that actions/cache packs are outside it.
"""
from __future__ import annotations

import math

from ovexport.recipe.compression import INT4_MODES, PartCompression

# weights of each part of the full-size model (the real checkpoint's index, tests/data/minicpm-v-2; checked in
# tests/unit/test_minicpmv2_model.py): the LLM IR holds the decoder and lm_head, the image encoder the vision tower
# (vpm) and the resampler
LM_HEAD = 282_822_912
FULL_WEIGHTS = {"text_embeddings": 282_822_912, "llm": 2_442_057_984 + LM_HEAD,
                "image_encoder": 397_747_744 + 29_514_240}
CHECKPOINT_BYTES = 6_869_931_584           # bf16: the index's metadata.total_size
EXTRAS = 1_000_000_000
MARGIN = 1.15                              # on the estimate, for what it leaves out (xml, file system blocks)
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}

# Memory: the peak RSS of a full-size build's heaviest step, as measured (bytes; BENCHMARKS.md, "Export: time and
# memory", `ovexport run recipes/synthetic-full-minicpmv2-int4.yaml` and the int8-vision recipe's compress, peak RSS
# per step from the lock; docs/investigations/2026-12-05-export-memory.md). Steps run one at a time, in child
# processes, so a job needs its largest step, not their sum.
MEASURED_PEAK_BYTES = {
    # fp16 export, LLM int4/int8 weight compression (data-free), image encoder fp16: convert_llm (the PyTorch LLM
    # traced), 2026-12-05 evening; validate 5.9 GB since the reference reads its weights from the checkpoint
    # (was 9.7 GB), compress 3.6 GB
    "weight_compression": 6_671_392_768,
    # the same with the image encoder quantized by nncf.quantize (int8_static), its compress step, the larger of the
    # two int8-vision recipes (recipes/minicpmv2-int4-int8vision.yaml on the synthetic source: 29 calibration pieces
    # against the synthetic recipe's 12): with NNCF's fast bias correction (11.9 GB, 2026-12-05 morning; 11.41 GB
    # for the synthetic recipe that evening) and without it (bias_correction: false; 8.74 GB, 8.57 GB), 2026-12-05
    "int8_static_image_encoder": 11_900_000_000,
    "int8_static_image_encoder_no_bias_correction": 8_743_153_664,
}
MEMORY_MARGIN = 1.15        # on a measured peak: another CPU's kernels, another calibration image order
RUNNER_OVERHEAD_GB = 1      # the runner's own agent and shell
# no measurement (an fp16 or fp32 LLM compiled for validation, data-aware LLM compression): the standard runner's
# whole memory, as before the measurement
UNMEASURED_MEMORY_GB = 16
TINY = {"memory_gb": 2, "disk_gb": 1}


def _backup_bytes(policy: PartCompression, dtype_bytes: int) -> float:
    return dtype_bytes if policy.backup_mode == "none" else 1.0


def compressed_bytes(part: str, policy: PartCompression | None, dtype_bytes: int) -> float:
    """Bytes of weights ``compress`` writes for one full-size part (0: not compressed, hard-linked)."""
    if policy is None:
        return 0.0
    weights = FULL_WEIGHTS[part]
    if policy.mode not in INT4_MODES:
        return weights * 1.0                       # int8 weight compression and int8_static: a byte a weight
    scale = 2 / policy.group_size if policy.group_size and policy.group_size > 0 else 0.0
    backup = _backup_bytes(policy, dtype_bytes)
    per_weight = policy.ratio * (0.5 + scale) + (1 - policy.ratio) * backup
    if part == "llm" and not policy.all_layers:    # lm_head stays in the backup mode
        return (weights - LM_HEAD) * per_weight + LM_HEAD * backup
    return weights * per_weight


def peak_disk_bytes(recipe) -> float:
    """The full-size build's peak disk use (see the module docstring)."""
    dtype_bytes = DTYPE_BYTES[recipe.export.weight_dtype]
    exported = dtype_bytes * (FULL_WEIGHTS["text_embeddings"] + 2 * FULL_WEIGHTS["llm"]
                              + FULL_WEIGHTS["image_encoder"])
    compressed = sum(compressed_bytes(part, getattr(recipe.compression, part), dtype_bytes) for part in FULL_WEIGHTS)
    return CHECKPOINT_BYTES + exported + compressed + EXTRAS


def measured_peak_bytes(recipe) -> int | None:
    """The measured peak RSS of the full-size build ``recipe`` makes (its heaviest step), or None when no build of
    its kind was measured: an LLM left in fp16/fp32 or compressed with data (AWQ, scale estimation, GPTQ,
    int8_static), a compressed or int8-weight image encoder, a non-fp16 export."""
    c = recipe.compression
    llm, vision = c.llm, c.image_encoder
    if recipe.export.weight_dtype != "fp16" or llm is None or llm.data_aware:
        return None
    if vision is None:
        return MEASURED_PEAK_BYTES["weight_compression"]
    if vision.is_static:
        return MEASURED_PEAK_BYTES["int8_static_image_encoder" if vision.bias_correction
                                   else "int8_static_image_encoder_no_bias_correction"]
    return None


def memory_gb(recipe) -> int:
    """GiB of memory ``recipe``'s full-size release job needs: its measured peak with :data:`MEMORY_MARGIN` and the
    runner's own :data:`RUNNER_OVERHEAD_GB`, or :data:`UNMEASURED_MEMORY_GB`."""
    peak = measured_peak_bytes(recipe)
    if peak is None:
        return UNMEASURED_MEMORY_GB
    return math.ceil(peak * MEMORY_MARGIN / 2**30 + RUNNER_OVERHEAD_GB)


def resources(recipe) -> dict:
    """``{"memory_gb", "disk_gb"}`` for ``recipe``'s release job."""
    src = recipe.source_spec
    if src.kind == "synthetic" and src.size == "tiny":
        return dict(TINY)
    return {"memory_gb": memory_gb(recipe), "disk_gb": math.ceil(peak_disk_bytes(recipe) * MARGIN / 2**30)}
