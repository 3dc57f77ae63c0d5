"""Everything model-specific lives in its family's package: generic code reaches it through the typed
``ModelFamily`` protocol and the one table of parts."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ovexport.models.generation_config import apply_generation_config, eos_token_ids
from ovexport.models.interface import GenerationPresets, ModelFamily
from ovexport.models.registry import families, family_of_synthetic, get_family
from ovexport.parts import PART_KEYS, PARTS, part, part_of_ir

pytestmark = pytest.mark.unit

PKG = Path(__file__).resolve().parents[2] / "ovexport"
FAMILY_NAMES = re.compile(r"minicpm|toyvlm|toy_family", re.IGNORECASE)
# where a family may be named: its package, and the test fixtures trained from its model (``ovexport/fixtures``,
# reached only through the synthetic-source registry)
FAMILY_CODE = ("models", "fixtures")


def test_no_module_outside_models_names_a_family():
    offenders = [f"{f.relative_to(PKG)}:{i}: {line.strip()}"
                 for f in sorted(PKG.rglob("*.py")) if f.relative_to(PKG).parts[0] not in FAMILY_CODE
                 for i, line in enumerate(f.read_text().splitlines(), 1) if FAMILY_NAMES.search(line)]
    assert offenders == []


# MiniCPM-V-2's own facts: its encoder's patch-grid input, where its features go, its query count, its trace size,
# its slicer (not the LLM's "slice the logits", nor OpenVINO's Slice op)
MINICPM_FACTS = re.compile(r"tgt_size|image_bounds|query_num|\b448\b|\bslic(e|es|ed|er|ing)\b|slice_(start|end|image|mode)",
                           re.IGNORECASE)


def test_no_module_outside_models_holds_a_minicpm_fact():
    offenders = [f"{f.relative_to(PKG)}:{i}: {line.strip()}"
                 for f in sorted(PKG.rglob("*.py")) if f.relative_to(PKG).parts[0] not in FAMILY_CODE
                 for i, line in enumerate(f.read_text().splitlines(), 1)
                 if MINICPM_FACTS.search(line) and "opset8.slice(" not in line]
    assert offenders == []


def test_registered_families_implement_the_protocol():
    for fam in families().values():
        assert isinstance(fam, ModelFamily), fam
        assert set(fam.parts) <= set(PART_KEYS)
        assert fam.synthetic_sizes and family_of_synthetic(fam.synthetic_sizes[0]) is fam


def test_one_name_per_part():
    assert PART_KEYS == ("text_embeddings", "llm", "image_encoder")
    for p in PARTS:
        assert part(p.key) is p and part_of_ir(p.ir_file) is p
        assert p.files == (p.ir_file, p.ir_file[:-4] + ".bin")
    assert part("llm").ir_file == "openvino_language_model.xml"      # openvino.genai's file name is kept
    with pytest.raises(KeyError, match="the parts are text_embeddings, llm, image_encoder"):
        part("language_model")


def test_minicpmv2_trace_size_rule_lives_in_its_family():
    fam = get_family("minicpmv2")
    assert fam.trace_size_problem(448) is None
    assert "27x27" in fam.trace_size_problem(378)
    assert "multiple of the patch size 14" in fam.trace_size_problem(450)


def test_generation_config_keys_win_over_the_family_presets():
    presets = GenerationPresets(sampling={"do_sample": True, "top_p": 0.8, "temperature": 0.7}, beam={"num_beams": 3})
    got = apply_generation_config(presets, {"temperature": 0.2, "num_beams": 1, "repetition_penalty": 1.3,
                                            "eos_token_id": [2, 7], "bos_token_id": 1})
    assert got.sampling == {"do_sample": True, "top_p": 0.8, "temperature": 0.2, "repetition_penalty": 1.3}
    assert got.beam == {"num_beams": 3, "repetition_penalty": 1.3}  # num_beams 1 does not turn beam search off
    assert apply_generation_config(presets, {}) == presets          # the real MiniCPM-V-2 file sets none of them
    assert eos_token_ids({"eos_token_id": [2, 7]}) == {2, 7} and eos_token_ids({"eos_token_id": 2}) == {2}
    assert eos_token_ids({}) == set()
