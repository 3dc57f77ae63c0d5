"""Issue 9: bundles a Hub user expects (card, OpenVINO tokenizer, reproducible files) and `ovexport publish`
through the real huggingface_hub client to a Hub-compatible server on 127.0.0.1 (tests/hub_server.py)."""
from __future__ import annotations

import io
import json
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ovexport.bundle.manifest import content_of
from ovexport.bundle.reproducible import recorded_checkpoint
from ovexport.cli import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hub_server import FakeHub  # noqa: E402

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
INT4 = str(REPO / "recipes" / "tiny-minicpmv2-int4.yaml")
TOKEN = "hf_test_write_token"
VERSION_TAG = "v0.1.0"


def ovexport(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> tuple[Path, Path]:
    """Two clean builds of the tiny int4 recipe, in two output roots, side by side (two processes: independent
    builds, and most of a tiny build is single-threaded start-up and tracing)."""
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    roots = [tmp_path_factory.mktemp(name) for name in ("build-a", "build-b")]
    procs = [subprocess.Popen([sys.executable, "-m", "ovexport.cli", "run", INT4, "--set", f"output.root={root}"],
                              cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for root in roots]
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output[-4000:]
    return roots[0] / "tiny-minicpmv2-int4" / "0.1.0", roots[1] / "tiny-minicpmv2-int4" / "0.1.0"


@pytest.fixture
def bundle(builds) -> Path:
    return builds[0]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    with FakeHub({TOKEN: "tester"}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_TOKEN", TOKEN)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))  # no stored login
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        # the server has no Xet (as a Hub without it); huggingface_hub >= 1.20 uploads through Xet whenever hf_xet
        # is installed without asking the server, so the client is told here (hub_server.py)
        monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        yield server


def bundle_bytes(bundle: Path) -> dict[str, bytes]:
    return {p.relative_to(bundle).as_posix(): p.read_bytes() for p in bundle.rglob("*") if p.is_file()}


def copy_with(bundle: Path, dst: Path, **manifest_changes) -> Path:
    shutil.copytree(bundle, dst)
    m = json.loads((dst / "manifest.json").read_text())
    m.update(manifest_changes)
    (dst / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    return dst


# ------------------------------------------------------------------------------------------ the bundle


def test_two_clean_builds_give_identical_files_apart_from_the_build_record(builds):
    a, b = builds
    fa, fb = bundle_bytes(a), bundle_bytes(b)
    assert set(fa) == set(fb)
    differ = sorted(f for f in fa if fa[f] != fb[f])
    assert differ in ([], ["manifest.json"]), differ
    ma, mb = (json.loads(fa["manifest.json"]), json.loads(fb["manifest.json"]))
    assert content_of(ma) == content_of(mb)
    assert set(ma["build"]) == {"created_at"}


def test_no_bundle_file_carries_a_path_of_the_build_machine(builds, tmp_path_factory):
    a, b = builds
    machine = {str(a.parent.parent), str(b.parent.parent), str(Path.home()), str(tmp_path_factory.getbasetemp()),
               str(recorded_checkpoint(a)), str(REPO)}
    for rel, data in bundle_bytes(a).items():
        for p in machine:
            assert p.encode() not in data, (rel, p)
    report = json.loads((a / "validation.json").read_text())
    assert "duration_s" not in json.dumps(report) and report["status"] == "passed"


def test_bundle_has_the_files_the_openvino_tools_look_for(bundle):
    for f in ("README.md", "openvino_tokenizer.xml", "openvino_tokenizer.bin", "openvino_detokenizer.xml",
              "openvino_detokenizer.bin", "preprocessor_config.json"):
        assert (bundle / f).is_file(), f
    config = json.loads((bundle / "tokenizer_config.json").read_text())
    assert "<用户>" in config["chat_template"]
    pre = json.loads((bundle / "preprocessor_config.json").read_text())
    assert pre["image_mean"] == [0.5, 0.5, 0.5] and pre["max_slice_nums"] == 9 and pre["patch_size"] == 14
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["validated"] is True and m["validation"]["status"] == "passed"
    assert {"README.md", "openvino_tokenizer.xml", "preprocessor_config.json"} <= set(m["files"])
    # the checkpoint's tokenizer_config.json was replaced in the bundle, not edited through a hard link
    ckpt = recorded_checkpoint(bundle)
    assert "chat_template" not in json.loads((ckpt / "tokenizer_config.json").read_text())


def test_chat_template_renders_the_prompt_of_the_runtime(bundle):
    import jinja2

    from ovexport.models.minicpmv2.prompt import build_prompt

    template = json.loads((bundle / "tokenizer_config.json").read_text())["chat_template"]
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "你好"}]
    rendered = jinja2.Environment().from_string(template).render(messages=msgs, bos_token="<s>",
                                                                 add_generation_prompt=True)
    assert rendered == "<s>" + build_prompt(msgs, None)[0]


def test_openvino_tokenizer_reproduces_our_ids_and_detokenizer_our_text(bundle):
    import openvino as ov

    from ovexport.models.minicpmv2.publishing import TOKENIZER_CORPUS, check_ov_tokenizer
    from ovexport.models.minicpmv2.tokenizer import MiniCPMVTokenizer

    ckpt = recorded_checkpoint(bundle)
    assert check_ov_tokenizer(ckpt, bundle) == []
    ours = MiniCPMVTokenizer.from_dir(ckpt)
    tok = ov.Core().compile_model(bundle / "openvino_tokenizer.xml", "CPU")
    ids = [tok([t])["input_ids"][0].tolist() for t in TOKENIZER_CORPUS]
    assert ids == [ours.encode(t) for t in TOKENIZER_CORPUS]
    assert any(1 in i[1:] or 2 in i for i in ids) and any(101 in i for i in ids)  # specials were in the corpus
    detok = ov.Core().compile_model(bundle / "openvino_detokenizer.xml", "CPU")
    plain = [t for t in TOKENIZER_CORPUS if not any(s in t for s in ours.added_tokens)]
    for t in plain:
        ids = ours.encode(t)
        assert str(detok(np.array([ids]))["string_output"][0]) == ours.decode(ids), t


def test_card_metadata_parses_and_its_tables_show_the_bundles_figures(bundle):
    from huggingface_hub import ModelCard

    card = ModelCard.load(bundle / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "openvino" and data["pipeline_tag"] == "image-text-to-text"
    assert {"openvino", "int4"} <= set(data["tags"])
    m = json.loads((bundle / "manifest.json").read_text())
    for name, check in m["validation"]["checks"].items():
        for metric, value in check["metrics"].items():
            shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            assert f"| {name} | {metric} | {shown} |" in card.text, (name, metric)
    w = m["compression"]["llm"]["weights"]
    assert f"| llm | int4_sym | 16 | 0.6 | {w['int4']['layers']} (" in card.text
    assert f"| OpenVINO | {m['packages']['openvino']} |" in card.text


def test_card_of_a_hub_source_names_base_model_and_license_and_warns_when_unvalidated(bundle):
    from huggingface_hub import ModelCard

    from ovexport.models.minicpmv2 import publishing
    from ovexport.publish.card import render_card

    m = json.loads((bundle / "manifest.json").read_text())
    m["source"].update(repo_id="openbmb/MiniCPM-V-2", revision="1" * 40)
    m["validation"], m["validated"] = None, False
    card = ModelCard(render_card(m, publishing, "org/minicpmv2-int4", license="apache-2.0"))
    d = card.data.to_dict()
    assert d["base_model"] == "openbmb/MiniCPM-V-2" and d["base_model_relation"] == "quantized"
    assert d["license"] == "apache-2.0" and "unvalidated" in d["tags"]
    assert "not validated" in card.text and "hf download org/minicpmv2-int4" in card.text


def _compare_results(manifest: dict, fingerprint: str | None = None) -> dict:
    """A compare.json whose one variant scored the bundle's IRs (its compress fingerprint), as compare writes."""
    fp = fingerprint or manifest["steps"]["compress"]
    row = {"label": "base", "name": manifest["name"], "is_reference": False, "kl_mean": 0.0123,
           "top1_agreement": 0.97, "llm_mb": 1.5}
    return {"recipe": "x.yaml", "evalset": {"name": "held-out", "items": 30, "has_answers": True, "digest": "d"},
            "reference": {"kind": "PyTorch (fp32 arithmetic)"}, "random_weights": True,
            "rows": [{"label": "reference", "name": "reference", "is_reference": True, "kl_mean": 0.0}, row],
            "variants": [{"name": manifest["name"], "label": "base", "compress_fingerprint": fp}]}


def test_package_output_does_not_depend_on_whether_compare_ran(bundle):
    """compare.json is no input of package: a compare of these very IRs left in the output root changes nothing."""
    root = bundle.parent.parent
    before = bundle_bytes(bundle)
    m = json.loads(before["manifest.json"])
    results = root / "compare" / m["name"] / "compare.json"
    results.parent.mkdir(parents=True)
    results.write_text(json.dumps(_compare_results(m)))
    try:
        r = ovexport("run", INT4, "--set", f"output.root={root}", "--force", "package")
        assert r.exit_code == 0, r.output
    finally:
        shutil.rmtree(results.parent.parent)
    after = bundle_bytes(bundle)
    assert set(after) == set(before) and "compare.json" not in after
    assert {f for f in after if after[f] != before[f]} <= {"manifest.json"}
    assert content_of(json.loads(after["manifest.json"])) == content_of(m)


# ------------------------------------------------------------------------------------------ publish


def test_first_publish_uploads_one_commit_tags_it_and_files_read_back_equal(bundle, hub):
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny")
    assert r.exit_code == 0, r.output
    assert "published tiny-minicpmv2-int4 0.1.0" in r.output
    repo = hub.repos["tester/tiny"]
    assert VERSION_TAG in repo.tags and repo.tags[VERSION_TAG] == repo.branches["main"]
    commits = [p for m, p in hub.requests if m == "POST" and "/commit/" in p]
    assert len(commits) == 1
    served = hub.files_at("tester/tiny", VERSION_TAG)
    local = bundle_bytes(bundle)
    assert {k: v for k, v in served.items() if k != ".gitattributes"} == local
    assert TOKEN not in r.output


def test_bin_files_go_through_lfs_and_a_snapshot_download_gives_back_every_file(bundle, hub, tmp_path):
    """The Hub's two upload paths: *.bin (the .gitattributes pattern) and files above the size threshold through
    LFS (batch API, PUT of the object, lfsFile in the commit), the rest regular; then every file read back."""
    import hashlib

    from huggingface_hub import snapshot_download

    local = bundle_bytes(bundle)
    hub.lfs_size_threshold = 8192
    large = {f for f, data in local.items() if len(data) > hub.lfs_size_threshold and not f.endswith(".bin")}
    bins = {f for f in local if f.endswith(".bin")}
    assert len(bins) >= 5 and large and set(local) - bins - large  # the three kinds are there
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny")
    assert r.exit_code == 0, r.output

    lfs = bins | large
    assert {p for key, p in hub.commit_ops if key == "lfsFile"} == lfs
    assert {p for key, p in hub.commit_ops if key == "file"} == set(local) - lfs
    assert set(hub.lfs_puts) == {hashlib.sha256(local[f]).hexdigest() for f in lfs}
    assert len(hub.lfs_puts) == len(set(hub.lfs_puts))   # each object uploaded once
    assert hub.lfs_paths_at("tester/tiny", VERSION_TAG) == lfs
    assert sum(1 for m, p in hub.requests if m == "POST" and p.endswith(".git/info/lfs/objects/verify")) \
        == len(set(hub.lfs_puts))

    before = len(hub.requests)
    got = Path(snapshot_download("tester/tiny", revision=VERSION_TAG, cache_dir=tmp_path / "dl", token=TOKEN,
                                 endpoint=hub.endpoint))
    downloaded = {p.relative_to(got).as_posix(): p.read_bytes() for p in got.rglob("*") if p.is_file()}
    assert downloaded.pop(".gitattributes").startswith(b"*.7z filter=lfs")
    assert downloaded.keys() == local.keys()
    assert [f for f in local if downloaded[f] != local[f]] == []
    # the LFS files came from the storage origin, after a 302 of /resolve; the regular ones from /resolve
    fetched = [p for m, p in hub.requests[before:] if m == "GET" and p.startswith("/lfs-storage/")]
    assert sorted(fetched) == sorted(f"/lfs-storage/{hashlib.sha256(local[f]).hexdigest()}" for f in lfs)
    assert not [p for m, p in hub.requests[before:] if m == "GET" and "/resolve/" in p and p.split("/resolve/")[1]
                .split("/", 1)[1] in lfs]   # an LFS file's GET /resolve is answered by the 302 of its HEAD


def test_same_version_again_is_a_no_op_and_changed_content_is_refused(bundle, builds, hub, tmp_path):
    assert ovexport("publish", str(bundle), "--repo-id", "tester/tiny").exit_code == 0
    before = dict(hub.repos["tester/tiny"].branches)
    # the other clean build: same content, another build record
    again = ovexport("publish", str(builds[1]), "--repo-id", "tester/tiny")
    assert again.exit_code == 0, again.output
    assert "already holds this bundle: nothing to do" in again.output
    assert hub.repos["tester/tiny"].branches == before
    m = json.loads((bundle / "manifest.json").read_text())
    changed = copy_with(bundle, tmp_path / "changed", recipe={**m["recipe"], "description": "something else"})
    refused = ovexport("publish", str(changed), "--repo-id", "tester/tiny")
    assert refused.exit_code != 0
    assert "already has v0.1.0 with other content" in refused.output and "bump `version`" in refused.output
    assert hub.repos["tester/tiny"].branches == before


def test_publish_with_compare_puts_its_figures_on_the_published_card_only(bundle, hub, tmp_path):
    from ovexport.bundle.manifest import sha256_file

    before = bundle_bytes(bundle)
    m = json.loads(before["manifest.json"])
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "compare.json").write_text(json.dumps(_compare_results(m, fingerprint="f" * 64)))
    refused = ovexport("publish", str(bundle), "--repo-id", "tester/tiny", "--compare", str(tmp_path / "other"))
    assert refused.exit_code != 0 and "no row for tiny-minicpmv2-int4 0.1.0" in refused.output
    assert hub.requests == []
    (tmp_path / "compare.json").write_text(json.dumps(_compare_results(m)))
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny", "--compare", str(tmp_path / "compare.json"))
    assert r.exit_code == 0, r.output
    served = hub.files_at("tester/tiny", VERSION_TAG)
    card = served["README.md"].decode()
    assert "## Comparison with the source model" in card and "| kl_mean | 0.0123 |" in card
    assert card.index("## Comparison with the source model") < card.index("## Provenance")
    published = json.loads(served["manifest.json"])
    assert published["figures"]["compare"]["rank by KL"] == "1 of 1"
    (tmp_path / "served").mkdir()
    for rel in ("README.md", "compare.json"):          # the published manifest describes the published files
        (tmp_path / "served" / rel).write_bytes(served[rel])
        assert published["files"][rel]["sha256"] == sha256_file(tmp_path / "served" / rel)
    assert bundle_bytes(bundle) == before                # the bundle on disk is untouched
    again = ovexport("publish", str(bundle), "--repo-id", "tester/tiny", "--compare", str(tmp_path / "compare.json"))
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_dry_run_prints_files_sizes_target_and_tag_and_uploads_nothing(bundle, hub):
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny", "--dry-run")
    assert r.exit_code == 0, r.output
    size = (bundle / "openvino_language_model.bin").stat().st_size
    assert "openvino_language_model.bin" in r.output and f"{size:,d}" in r.output
    assert "tester/tiny@main" in r.output and "tag v0.1.0" in r.output and "nothing uploaded" in r.output
    assert hub.requests == []


def test_missing_or_rejected_token_and_unreachable_hub_are_one_line_with_the_fix(bundle, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny")
    assert r.exit_code != 0 and "no Hugging Face token" in r.output and "HF_TOKEN" in r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output

    monkeypatch.setenv("HF_TOKEN", "hf_secret_but_wrong")
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny")
    assert r.exit_code != 0 and "rejected the token (401)" in r.output
    assert "hf_secret_but_wrong" not in r.output and len(r.output.strip().splitlines()) == 1
    assert hub.repos == {}

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny")
    assert r.exit_code != 0 and "cannot reach the Hub" in r.output and len(r.output.strip().splitlines()) == 1


def test_upload_cut_off_midway_leaves_no_tag_and_the_next_run_completes_it(bundle, hub):
    hub.cut_commits = True
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny")
    assert r.exit_code != 0 and "failed midway" in r.output and "run the same command again" in r.output
    repo = hub.repos["tester/tiny"]
    assert repo.tags == {} and len(repo.commits) == 1            # only the repo's initial commit
    hub.cut_commits = False
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny")
    assert r.exit_code == 0, r.output
    assert {k: v for k, v in hub.files_at("tester/tiny", VERSION_TAG).items() if k != ".gitattributes"} \
        == bundle_bytes(bundle)


def test_private_repo_is_created_private_and_read_back_only_with_the_token(bundle, hub, tmp_path):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    r = ovexport("publish", str(bundle), "--repo-id", "tester/secret", "--private")
    assert r.exit_code == 0, r.output
    assert hub.repos["tester/secret"].private
    got = hf_hub_download("tester/secret", "manifest.json", revision=VERSION_TAG, token=TOKEN,
                          endpoint=hub.endpoint, cache_dir=tmp_path / "c1")
    assert Path(got).read_bytes() == (bundle / "manifest.json").read_bytes()
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/secret", "manifest.json", revision=VERSION_TAG, token=False,
                        endpoint=hub.endpoint, cache_dir=tmp_path / "c2")


def test_unvalidated_bundle_is_refused_unless_allowed_and_chat_warns(bundle, hub, tmp_path):
    unvalidated = copy_with(bundle, tmp_path / "unvalidated", validation=None, validated=False)
    r = ovexport("publish", str(unvalidated), "--repo-id", "tester/tiny")
    assert r.exit_code != 0 and "not validated" in r.output and "--allow-unvalidated" in r.output
    assert hub.repos == {}
    r = ovexport("publish", str(unvalidated), "--repo-id", "tester/tiny", "--allow-unvalidated")
    assert r.exit_code == 0, r.output

    from ovexport.bundle.manifest import unvalidated_warning
    assert "NOT VALIDATED" in unvalidated_warning(unvalidated)
    assert unvalidated_warning(bundle) is None                     # passed: every part gated
    chat = ovexport("chat", str(unvalidated), "Hi", "--greedy", "--max-new-tokens", "2")
    assert chat.exit_code == 0, chat.output
    assert "NOT VALIDATED" in chat.stderr and "NOT VALIDATED" not in chat.stdout


# ------------------------------------------------------------------------------------------ validation states


@pytest.fixture(scope="module")
def ungated_bundle(builds) -> Path:
    """The tiny int4 recipe with every threshold null, built by the real steps next to build A (the run cache
    gives it build A's conversions, the reference cache its PyTorch outputs: only validate and package run)."""
    root = builds[0].parent.parent
    r = ovexport("run", INT4, "--set", f"output.root={root}", "--set", "name=tiny-ungated",
                 "--set", "validation.thresholds.text_embeddings={max_abs_diff: null}",
                 "--set", "validation.thresholds.image_encoder={max_abs_diff: null, min_cosine: null}",
                 "--set", "validation.thresholds.llm={max_abs_diff: null, min_cosine: null, "
                          "min_top1_agreement: null, max_kl: null}",
                 "--set", "validation.thresholds.end_to_end.min_token_agreement=null")
    assert r.exit_code == 0, r.output
    assert "validation not gated: text_embeddings (max_abs_diff measured, no threshold); image_encoder" in r.output
    return root / "tiny-ungated" / "0.1.0"


def test_a_bundle_with_every_gate_off_is_not_gated_and_published_only_with_allow_ungated(ungated_bundle, hub):
    report = json.loads((ungated_bundle / "validation.json").read_text())
    parts = ["text_embeddings", "image_encoder", "llm", "end_to_end"]
    assert (report["status"], report["not_gated"], report["passed"]) == ("not_gated", parts, False)
    m = json.loads((ungated_bundle / "manifest.json").read_text())
    assert (m["validation"]["status"], m["validation"]["not_gated"], m["validated"]) == ("not_gated", parts, False)
    for flags in ((), ("--allow-unvalidated",)):
        r = ovexport("publish", str(ungated_bundle), "--repo-id", "tester/ungated", *flags)
        assert r.exit_code != 0 and "validation not gated: text_embeddings" in r.output, r.output
        assert "--allow-ungated" in r.output and len(r.output.strip().splitlines()) == 1
    assert hub.repos == {}
    r = ovexport("publish", str(ungated_bundle), "--repo-id", "tester/ungated", "--allow-ungated")
    assert r.exit_code == 0, r.output
    card = hub.files_at("tester/ungated", VERSION_TAG)["README.md"].decode()
    assert "Validation **not gated**: text_embeddings (max_abs_diff measured, no threshold); image_encoder" in card
    assert "Validation **passed**" not in card and "validation-not-gated" in card
    chat = ovexport("chat", str(ungated_bundle), "Hi", "--greedy", "--max-new-tokens", "2")
    assert chat.exit_code == 0, chat.output
    assert "validation NOT GATED: text_embeddings" in chat.stderr and "NOT GATED" not in chat.stdout


def test_validate_says_not_gated_and_what(ungated_bundle):
    r = ovexport("validate", str(ungated_bundle), "--checkpoint", str(recorded_checkpoint(ungated_bundle)))
    assert r.exit_code == 0, r.output
    assert "validation not gated: text_embeddings (max_abs_diff measured, no threshold)" in r.output
    assert "validation passed" not in r.output


@pytest.fixture(scope="module")
def failed_bundle(ungated_bundle, tmp_path_factory) -> Path:
    """A copy of the ungated bundle whose recipe gates the int4 LLM's top-1 agreement at 1 (measured 0.8), re-validated
    by the real checks, which fail, with that report written into it as the package step writes one."""
    from rich.console import Console

    from ovexport.bundle.manifest import file_entries, validation_summary
    from ovexport.bundle.reproducible import bundle_validation
    from ovexport.validators.bundle_check import revalidate_bundle

    dst = tmp_path_factory.mktemp("failed") / "bundle"
    m = json.loads((ungated_bundle / "manifest.json").read_text())
    m["recipe"]["validation"]["thresholds"]["llm"]["min_top1_agreement"] = 1.0
    copy_with(ungated_bundle, dst, recipe=m["recipe"])      # the files the manifest lists are unchanged
    report = revalidate_bundle(dst, recorded_checkpoint(ungated_bundle), console=Console(file=io.StringIO()))
    assert report["status"] == "failed" and report["failures"][0].startswith("llm.top1_agreement "), report["failures"]
    validation = bundle_validation(report, [str(dst), str(recorded_checkpoint(ungated_bundle))])
    (dst / "validation.json").write_text(json.dumps(validation, indent=2) + "\n")
    m["validation"], m["validated"] = validation_summary(validation), False
    m["files"] = file_entries(dst)
    (dst / "manifest.json").write_text(json.dumps(m, indent=2) + "\n")
    return dst


@pytest.mark.parametrize("flags", [(), ("--allow-unvalidated",), ("--allow-ungated",),
                                   ("--allow-unvalidated", "--allow-ungated")])
def test_a_failed_bundle_is_never_published(failed_bundle, hub, flags):
    r = ovexport("publish", str(failed_bundle), "--repo-id", "tester/failed", "--dry-run", *flags)
    assert r.exit_code != 0 and "validation failed; a failed bundle is never published" in r.output, r.output
    assert hub.requests == [] and hub.repos == {}
    from ovexport.bundle.manifest import unvalidated_warning
    assert "validation FAILED" in unvalidated_warning(failed_bundle)


def test_tampered_bundle_is_refused_before_anything_is_uploaded(bundle, hub, tmp_path):
    bad = copy_with(bundle, tmp_path / "bad")
    data = bytearray((bad / "openvino_language_model.bin").read_bytes())
    data[100] ^= 0xFF
    (bad / "openvino_language_model.bin").unlink()  # may be a hard link to the built bundle's file
    (bad / "openvino_language_model.bin").write_bytes(bytes(data))
    r = ovexport("publish", str(bad), "--repo-id", "tester/tiny")
    assert r.exit_code != 0 and "does not match its sha256" in r.output
    assert hub.requests == []


def test_create_pr_opens_a_pull_request_and_tags_nothing(bundle, hub):
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny", "--create-pr")
    assert r.exit_code == 0, r.output
    repo = hub.repos["tester/tiny"]
    assert len(repo.prs) == 1 and repo.tags == {} and "discussions/1" in r.output


def test_revision_commits_to_a_new_branch_and_tags_that_commit(bundle, hub):
    r = ovexport("publish", str(bundle), "--repo-id", "tester/tiny", "--revision", "release-0.1")
    assert r.exit_code == 0, r.output
    repo = hub.repos["tester/tiny"]
    assert repo.tags[VERSION_TAG] == repo.branches["release-0.1"] != repo.branches["main"]


def test_run_pipeline_publish_builds_and_publishes_every_recipe(builds, hub, tmp_path):
    # last in the module: it re-packages build A (the card now names the repo); every other step is up to date
    root = builds[0].parent.parent
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"recipes:\n  - {INT4}\npublish:\n  repo_id_prefix: tester/ov-\n")
    r = ovexport("run", str(pipeline), "--publish", "--set", f"output.root={root}")
    assert "validation passed" in r.output           # the run says so below the bundle's path
    assert r.exit_code == 0, r.output
    assert VERSION_TAG in hub.repos["tester/ov-tiny-minicpmv2-int4"].tags
    card = hub.files_at("tester/ov-tiny-minicpmv2-int4", VERSION_TAG)["README.md"].decode()
    assert "hf download tester/ov-tiny-minicpmv2-int4" in card  # the card names the repo it went to
