"""The registry picks a family by what a config.json says, never by registration order: MiniCPM-V-2 and its
relatives share ``model_type: minicpmv``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ovexport.errors import CheckpointError
from ovexport.models import registry
from ovexport.models.registry import family_for, family_for_config, get_family

pytestmark = pytest.mark.unit

V2 = json.loads((Path(__file__).resolve().parents[1] / "data" / "minicpm-v-2" / "config.json").read_text())

# the keys that tell openbmb/MiniCPM-V-2_6 apart (its config.json as published, abridged): same model type and
# architecture as V-2, a Qwen2 language model, a SigLIP tower described by transformers' vision_config
V2_6 = {
    "_name_or_path": "openbmb/MiniCPM-V-2_6", "architectures": ["MiniCPMV"], "model_type": "minicpmv",
    "version": 2.6, "hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28,
    "num_key_value_heads": 4, "vocab_size": 151666, "query_num": 64, "image_size": 448, "patch_size": 14,
    "slice_mode": True, "use_image_id": True, "batch_vision_input": True, "drop_vision_last_layer": False,
    "slice_config": {"max_slice_nums": 9, "model_type": "minicpmv", "patch_size": 14, "scale_resolution": 448},
    "vision_config": {"hidden_size": 1152, "image_size": 980, "intermediate_size": 4304, "model_type": "siglip",
                      "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14},
}
# openbmb/MiniCPM-Llama3-V-2_5: version 2.5, 96 queries, an Idefics2 vision_config
V2_5 = {**V2_6, "_name_or_path": "openbmb/MiniCPM-Llama3-V-2_5", "version": 2.5, "query_num": 96,
        "vocab_size": 128256, "vision_config": {**V2_6["vision_config"], "model_type": "idefics2"}}


def test_the_real_minicpm_v_2_config_picks_minicpmv2():
    assert family_for_config(V2).name == "minicpmv2"


def test_a_synthetic_minicpm_v_2_config_picks_minicpmv2():
    from ovexport.models.minicpmv2.synth import synthetic_config

    # the tiny one carries a vision_config too, of timm keyword arguments (no model_type)
    assert family_for_config(synthetic_config("tiny", 0)).name == "minicpmv2"
    assert family_for_config(synthetic_config("full", 0)).name == "minicpmv2"


@pytest.mark.parametrize("config, version", [(V2_6, "2.6"), (V2_5, "2.5")])
def test_minicpm_v_2_6_and_2_5_are_named_and_refused(config, version):
    assert not get_family("minicpmv2").matches(config)
    with pytest.raises(CheckpointError) as e:
        family_for_config(config, where="ckpt/config.json")
    assert e.value.what == (f"ckpt/config.json: MiniCPM-V-{version} is not supported yet "
                            "(ovexport supports MiniCPM-V-2)")
    assert "openbmb/MiniCPM-V-2" in e.value.fix and "OVEXPORT_FAMILIES" in e.value.fix
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("change, said", [
    ({"vision_encoder": "vit_large_patch14_clip_224"}, "vision_encoder 'vit_large_patch14_clip_224'"),
    ({"vision_config": {"model_type": "siglip_vision_model"}}, "a 'siglip_vision_model' vision_config"),
])
def test_a_minicpmv_config_unlike_v2_without_a_version_says_how_it_differs(change, said):
    with pytest.raises(CheckpointError, match="not MiniCPM-V-2") as e:
        family_for_config({**V2, **change})
    assert said in e.value.what


def test_query_num_is_a_v2_parameter_not_a_tell():
    # the trained tiny fixture resamples to 16 tokens: still MiniCPM-V-2
    assert family_for_config({**V2, "query_num": 16}).name == "minicpmv2"


def test_an_unknown_model_type_lists_the_families():
    with pytest.raises(CheckpointError, match="model_type 'llava' with these keys is not a supported model") as e:
        family_for_config({"model_type": "llava"})
    assert "minicpmv2 (MiniCPM-V-2)" in e.value.fix


def test_two_families_claiming_a_config_is_an_error_naming_both(monkeypatch):
    from ovexport.models.minicpmv2.family import MiniCPMV2Family

    class Claimer(MiniCPMV2Family):    # claims every minicpmv config, V-2 included
        name = "claimer"
        synthetic_sizes = ()

        def matches(self, config):
            return config.get("model_type") == "minicpmv"

    registry.families()
    monkeypatch.setitem(registry._FAMILIES, "claimer", Claimer())
    with pytest.raises(CheckpointError, match=r"families minicpmv2 \(ovexport.models.minicpmv2.family\) and "
                                              r"claimer \(.*test_family_registry\) both claim this config.json"):
        family_for_config(V2)
    # the order they were registered in does not decide: with only the claimer, 2.6 goes to it
    monkeypatch.delitem(registry._FAMILIES, "minicpmv2")
    assert family_for_config(V2_6).name == "claimer"


def test_family_for_reads_the_checkpoint_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(V2_6))
    with pytest.raises(CheckpointError, match="config.json: MiniCPM-V-2.6 is not supported yet"):
        family_for(tmp_path)


def test_a_family_without_the_optional_unsupported_hook_gets_the_generic_error(monkeypatch):
    from ovexport.models.minicpmv2.family import MiniCPMV2Family

    class Plain(MiniCPMV2Family):      # matches V-2 only, says nothing about its relatives
        name = "plain"
        synthetic_sizes = ()
        unsupported = None

    registry.families()
    monkeypatch.setitem(registry._FAMILIES, "plain", Plain())
    monkeypatch.delitem(registry._FAMILIES, "minicpmv2")
    assert family_for_config(V2).name == "plain"
    with pytest.raises(CheckpointError, match="model_type 'minicpmv' with these keys is not a supported model"):
        family_for_config(V2_6)
