"""The package step's pieces, each on its own: the bundle's files, the validation as shipped, the manifest's
content and file list, the card's license and the note of the source checkpoint kept outside the bundle."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from ovexport.bundle.contents import gather_files, read_compression
from ovexport.bundle.layout import COMPRESSION, LANGUAGE_MODEL, MANIFEST, TEXT_EMBEDDINGS, VALIDATION
from ovexport.bundle.manifest import BUILD, FORMAT, content_of, sha256_file, verify_files, write_manifest
from ovexport.bundle.manifest_content import PACKAGES, manifest_content
from ovexport.bundle.reproducible import LOCAL_SOURCES, record_checkpoint, recorded_checkpoint, ship_validation
from ovexport.engine.lock import Lock
from ovexport.publish.bundle_card import source_license

pytestmark = pytest.mark.unit


class _Publishing:
    def __init__(self):
        self.calls = []

    def write_bundle_files(self, ckpt: Path, out: Path) -> None:
        self.calls.append((ckpt, out))
        (out / "extra.json").write_text("{}")


def _family(publishing=None):
    return SimpleNamespace(name="fam", parts=("text_embeddings", "llm"), bundle_files=("config.json", "absent.txt"),
                           publishing=lambda: publishing)


def _irs(d: Path) -> Path:
    d.mkdir()
    for xml in (TEXT_EMBEDDINGS, LANGUAGE_MODEL):
        (d / xml).write_text("<xml/>")
        (d / xml.replace(".xml", ".bin")).write_bytes(b"\0" * 8)
    return d


def test_gather_files_takes_the_family_s_irs_its_checkpoint_files_and_its_extras(tmp_path):
    ckpt, out = tmp_path / "ckpt", tmp_path / "out"
    ckpt.mkdir()
    out.mkdir()
    (ckpt / "config.json").write_text("{}")
    (ckpt / "weights.safetensors").write_text("not shipped")
    irs = _irs(tmp_path / "irs")
    (irs / "openvino_image_encoder_model.xml").write_text("not a part of this family")
    publishing = _Publishing()
    gather_files(_family(publishing), ckpt, irs, out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [TEXT_EMBEDDINGS, TEXT_EMBEDDINGS[:-4] + ".bin", LANGUAGE_MODEL, LANGUAGE_MODEL[:-4] + ".bin", "config.json",
         "extra.json"])
    assert publishing.calls == [(ckpt, out)]
    gather_files(_family(None), ckpt, irs, tmp_path / "bare")     # a family without publishing facts
    assert not (tmp_path / "bare" / "extra.json").exists()


def test_read_compression_is_empty_without_the_compress_record(tmp_path):
    assert read_compression(tmp_path) == {}
    (tmp_path / COMPRESSION).write_text(json.dumps({"llm": {"mode": "int4_asym"}}))
    assert read_compression(tmp_path) == {"llm": {"mode": "int4_asym"}}


def test_ship_validation_writes_the_report_without_machine_paths_or_timings(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert ship_validation(tmp_path / "none" / VALIDATION, [], out) is None and not (out / VALIDATION).exists()
    report = {"passed": True, "checkpoint": "/home/me/ckpt", "duration_s": 3.2,
              "checks": [{"name": "llm", "duration_s": 1.0, "note": f"read {tmp_path}/ckpt/config.json"}]}
    (tmp_path / VALIDATION).write_text(json.dumps(report))
    shipped = ship_validation(tmp_path / VALIDATION, [str(tmp_path)], out)
    assert shipped == {"passed": True, "checks": [{"name": "llm", "note": "read <local>/ckpt/config.json"}]}
    assert json.loads((out / VALIDATION).read_text()) == shipped


def _content(tmp_path: Path, validation=None, **over) -> dict:
    lock = Lock(tmp_path / "lock.json", {"download": {"fingerprint": "fd", "output": {"digest": "ckptdigest"}},
                                         "compress": {"fingerprint": "fc"}, "package": {"fingerprint": "fp"}})
    kw = dict(name="b", version="1.0.0", family="fam",
              recipe={"name": "b", "source": f"{tmp_path}/ckpt", "output": {"root": "dist", "publish": None}},
              source={"uri": f"{tmp_path}/ckpt", "kind": "local", "repo_id": None, "revision": None},
              lock=lock, compression={"llm": {}}, validation=validation, machine=[str(tmp_path)])
    return manifest_content(**{**kw, **over})


def test_the_manifest_content_records_provenance_without_this_machine(tmp_path):
    c = _content(tmp_path)
    assert c["format"] == FORMAT and c["model_family"] == "fam" and c["name"] == "b"
    assert c["recipe"] == {"name": "b", "source": "<local>/ckpt", "output": {"publish": None}}  # no output.root
    assert c["source"] == {"uri": "<local>/ckpt", "kind": "local", "repo_id": None, "revision": None,
                           "checkpoint_digest": "ckptdigest"}
    assert c["steps"] == {"download": "fd", "compress": "fc"}          # not the packaging step's own
    assert set(PACKAGES) <= set(c["packages"]) and {"ovexport", "python"} <= set(c["packages"])
    assert c["validated"] is False and c["validation"] is None
    assert str(tmp_path) not in json.dumps(c)


def test_the_manifest_content_says_validated_only_when_every_gate_held(tmp_path):
    check = {"name": "llm", "passed": True, "status": "passed", "metrics": {"kl": 0.0},
             "gates": [{"metric": "kl", "value": 0.0, "limit": 0.1, "passed": True}]}
    passed = _content(tmp_path, validation={"passed": True, "status": "passed", "checks": [check]})
    assert passed["validated"] is True and passed["validation"]["checks"]["llm"]["passed"] is True
    failed = _content(tmp_path, validation={"passed": False, "status": "failed",
                                            "checks": [{**check, "passed": False, "status": "failed"}]})
    assert failed["validated"] is False


def test_write_manifest_lists_every_file_but_itself_with_a_build_record(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("b")
    content = {"format": FORMAT, "name": "b"}
    m = write_manifest(tmp_path, content)
    assert json.loads((tmp_path / MANIFEST).read_text()) == m
    assert set(m["files"]) == {"a.bin", "sub/b.txt"}
    assert m["files"]["a.bin"] == {"size": 3, "sha256": sha256_file(tmp_path / "a.bin")}
    assert content_of(m) == {**content, "files": m["files"]} and "created_at" in m[BUILD]
    verify_files(tmp_path, m)


def test_the_source_checkpoint_is_noted_outside_the_bundle_per_version(tmp_path):
    work = tmp_path / "dist" / ".work" / "b"
    work.mkdir(parents=True)
    record_checkpoint(work, "1.0.0", tmp_path / "ckpt-a")
    record_checkpoint(work, "1.1.0", tmp_path / "ckpt-b")
    assert json.loads((work / LOCAL_SOURCES).read_text()) == {"1.0.0": str(tmp_path / "ckpt-a"),
                                                            "1.1.0": str(tmp_path / "ckpt-b")}
    assert recorded_checkpoint(tmp_path / "dist" / "b" / "1.0.0") == tmp_path / "ckpt-a"
    assert recorded_checkpoint(tmp_path / "dist" / "b" / "2.0.0") is None
    (work / LOCAL_SOURCES).write_text("not json")               # a broken note is replaced, not an error
    record_checkpoint(work, "1.0.0", tmp_path / "ckpt-c")
    assert recorded_checkpoint(tmp_path / "dist" / "b" / "1.0.0") == tmp_path / "ckpt-c"


def test_the_card_s_license_is_the_source_card_s(tmp_path):
    assert source_license(tmp_path) is None
    (tmp_path / "README.md").write_text("---\nlicense: apache-2.0\n---\n# a model\n")
    assert source_license(tmp_path) == "apache-2.0"
    (tmp_path / "README.md").write_text("no metadata at all")
    assert source_license(tmp_path) is None
