"""The one table of a bundle's parts: what each is called everywhere, and where each lives along the pipeline.

A part has ONE name (``key``): the recipe's ``compression.<key>`` and ``validation.thresholds.<key>``, the
``compression.json`` / manifest entry, the validation check's part, the family's ``part_specs`` key and the
PyTorch reference part. Only the IR file keeps the name openvino.genai and optimum-intel give it
(``openvino_language_model.xml``): bundles stay loadable by their tools.

A model family declares which of these parts it has (``ModelFamily.parts``); generic code walks this table
instead of keeping its own mapping.
"""
from __future__ import annotations

from dataclasses import dataclass

from ovexport.bundle.layout import IMAGE_ENCODER, LANGUAGE_MODEL, TEXT_EMBEDDINGS, ir_files


@dataclass(frozen=True)
class Part:
    key: str               # the part's one name (recipe key, compression.json, validation, part_specs)
    ir_file: str           # IR file (.xml) in a bundle and in every IR artifact
    convert_step: str      # the step that converts it from PyTorch
    converted: str         # the artifact that step produces
    source_artifact: str   # the artifact holding its final uncompressed IR (what compress reads)
    reference_part: str    # the PyTorch reference part that computes it (``Reference.release`` frees it)

    @property
    def files(self) -> tuple[str, str]:
        """``(xml, bin)`` file names."""
        return ir_files(self.ir_file)


# pipeline order (the order the convert steps run and compression.json lists them)
PARTS: tuple[Part, ...] = (
    # a lookup in the LLM's embedding table: the reference computes it with its LLM
    Part("text_embeddings", TEXT_EMBEDDINGS, "convert_text_embeddings", "text_embeddings_ir", "text_embeddings_ir",
         "llm"),
    # made stateful (KV cache as OpenVINO state) by make_stateful before compression
    Part("llm", LANGUAGE_MODEL, "convert_llm", "llm_ir", "llm_stateful_ir", "llm"),
    Part("image_encoder", IMAGE_ENCODER, "convert_image_encoder", "image_encoder_ir", "image_encoder_ir",
         "image_encoder"),
)
PART_KEYS: tuple[str, ...] = tuple(p.key for p in PARTS)
IR_FILES: tuple[str, ...] = tuple(p.ir_file for p in PARTS)
REFERENCE_PARTS: tuple[str, ...] = tuple(dict.fromkeys(p.reference_part for p in PARTS))

_BY_KEY = {p.key: p for p in PARTS}


def part(key: str) -> Part:
    """The part called ``key``; ``KeyError`` names the known ones."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown part {key!r}; the parts are {', '.join(PART_KEYS)}") from None


def part_of_ir(xml_name: str, family=None) -> Part | None:
    """The part whose IR file is ``xml_name`` (a bare file name), or None; ``family`` adds its own IR layout."""
    for p in PARTS:
        if xml_name in (ir_files_of(family, p.key) if family is not None else (p.ir_file,)):
            return p
    return None


def ir_files_of(family, key: str) -> tuple[str, ...]:
    """The IR files (.xml) that hold part ``key`` for ``family``: one, ``Part.ir_file``, unless the family's
    ``ir_layout`` splits the part (an image encoder as the vision-embeddings and resampler IRs openvino.genai opens)."""
    return tuple(getattr(family, "ir_layout", {}).get(key, (part(key).ir_file,)))


def family_ir_files(family) -> tuple[str, ...]:
    """Every IR file (.xml) of a bundle of ``family``, in pipeline order."""
    return tuple(f for p in PARTS if p.key in family.parts for f in ir_files_of(family, p.key))
