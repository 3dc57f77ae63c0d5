"""Shared session fixtures of the integration tests: tiny synthetic checkpoints (random and trained) and IRs.

- ``tiny_checkpoint``: ``synthetic://tiny?seed=0`` written once per session;
- ``tiny_irs_fp32``: a directory with the three IRs exported in fp32 (the LLM made stateful), as the
  ``compressed_ir`` artifact of a recipe without compression;
- ``tiny_irs_int4``: the same with the LLM compressed int4_sym, group 16, ratio 0.6 (tiny-minicpmv2-int4);
- ``trained_checkpoint``: ``synthetic://tiny-trained?seed=0``, trained on a generated VQA task (cached).

Tests must not modify these directories: copy them first (``shutil.copytree``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

INT4_POLICY = {"mode": "int4_sym", "group_size": 16, "ratio": 0.6}


def export_irs(ckpt: Path, out: Path, weight_dtype: str = "fp32", compression: dict | None = None) -> Path:
    """The three IRs of ``ckpt`` into ``out``; ``compression`` = {part: policy dict} for ``compress_model``."""
    from ovexport.exporter.convert import export_irs as export

    export(ckpt, out, weight_dtype, compression)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from ovexport.models.registry import get_family

    ckpt = tmp_path_factory.mktemp("tiny-ckpt") / "ckpt"
    get_family("minicpmv2").write_synthetic(ckpt, size="tiny", seed=0)
    return ckpt


@pytest.fixture(scope="session")
def tiny_irs_fp32(tmp_path_factory, tiny_checkpoint) -> Path:
    return export_irs(tiny_checkpoint, tmp_path_factory.mktemp("irs-fp32"))


@pytest.fixture(scope="session")
def tiny_irs_int4(tmp_path_factory, tiny_irs_fp32) -> Path:
    """The fp32 IRs with the LLM IR compressed (read back from the fp32 directory: no second conversion)."""
    import openvino as ov

    from ovexport.bundle.layout import LANGUAGE_MODEL, ir_files
    from ovexport.exporter.compress import compress_model
    from ovexport.exporter.convert import save_ir

    out = tmp_path_factory.mktemp("irs-int4")
    for f in tiny_irs_fp32.iterdir():
        if f.name not in ir_files(LANGUAGE_MODEL):
            shutil.copy2(f, out / f.name)
    model = ov.Core().read_model(tiny_irs_fp32 / LANGUAGE_MODEL)
    model = compress_model(model, INT4_POLICY)
    save_ir(model, out, LANGUAGE_MODEL)
    return out


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """``synthetic://tiny-trained?seed=0``: the tiny model trained on the generated VQA task, with its held-out
    questions in ``heldout/questions.jsonl`` + ``heldout/images/``. Trained once (a few minutes) into the
    cache ($OVEXPORT_CACHE, default ~/.cache/ovexport, keyed by the code that decides its bytes), so
    ``ovexport run`` on the tiny-trained recipes and later sessions reuse it."""
    from ovexport.models.registry import write_synthetic

    ckpt = tmp_path_factory.mktemp("trained-ckpt") / "ckpt"
    write_synthetic("tiny-trained", ckpt, seed=0)
    return ckpt
