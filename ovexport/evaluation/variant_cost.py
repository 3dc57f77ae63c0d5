"""What a variant costs, read from its IRs: bytes on disk, bytes the LLM reads per generated token, and the
share of its parameters stored compressed.

``llm_bytes_per_token`` is the size of the LLM's weights file: a decode step reads every weight of the
language model once (the text embeddings, a separate IR, are read one row per token and not counted; the KV
cache read grows with the context and is not counted either).
"""
from __future__ import annotations

from pathlib import Path

from ovexport.bundle.layout import LANGUAGE_MODEL, TEXT_EMBEDDINGS, ir_files


def ir_cost(ir_dir: Path, family) -> dict:
    import openvino as ov

    from ovexport.exporter.inspect import weight_bit_stats
    from ovexport.parts import ir_files_of

    ir_dir = Path(ir_dir)
    image_irs = ir_files_of(family, "image_encoder")
    sizes = {xml: sum((ir_dir / f).stat().st_size for f in ir_files(xml))
             for xml in (TEXT_EMBEDDINGS, LANGUAGE_MODEL, *image_irs)}
    llm_bin = ir_dir / ir_files(LANGUAGE_MODEL)[1]
    stats = weight_bit_stats(ov.Core().read_model(ir_dir / LANGUAGE_MODEL))
    total = sum(v["params"] for v in stats.values()) or 1
    return {
        "size_bytes": sum(sizes.values()),
        "llm_bytes": sizes[LANGUAGE_MODEL],
        "image_encoder_bytes": sum(sizes[xml] for xml in image_irs),
        "llm_bytes_per_token": llm_bin.stat().st_size,
        "llm_int4_share": stats["int4"]["params"] / total,
        "llm_int8_share": stats["int8"]["params"] / total,
        "llm_compressed_share": (stats["int4"]["params"] + stats["int8"]["params"]) / total,
    }
