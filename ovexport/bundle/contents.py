"""The files of a bundle other than its manifest and card: the IRs of the family's parts, the checkpoint files the
family ships (tokenizer, configs) and the family's own extras (``Publishing.write_bundle_files``)."""
from __future__ import annotations

import json
from pathlib import Path

from ovexport.engine.code_digest import link_or_copy
from ovexport.parts import family_ir_files

from .layout import COMPRESSION, ir_files


def gather_files(family, ckpt: Path, irs: Path, out: Path) -> None:
    """Hard-link (or copy) into ``out`` every IR ``family`` exports from ``irs`` and the checkpoint files it ships
    from ``ckpt``, then let its publishing code write its extras."""
    for xml in family_ir_files(family):
        for f in ir_files(xml):
            link_or_copy(irs / f, out / f)
    for name in family.bundle_files:
        if (ckpt / name).is_file():
            link_or_copy(ckpt / name, out / name)
    publishing = family.publishing()
    if publishing is not None:
        publishing.write_bundle_files(ckpt, out)


def read_compression(irs: Path) -> dict:
    """The compress step's record of what it did to each part (``compression.json``), {} when there is none."""
    f = irs / COMPRESSION
    return json.loads(f.read_text()) if f.is_file() else {}
