"""Issue 9: the CI and release workflows pass actionlint and zizmor; `ovexport matrix` gives one job per recipe."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ovexport.cli import cli

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: pip install -e '.[dev]' (it ships in the dev extras)"
    return path


def test_workflows_pass_actionlint():
    r = subprocess.run([_tool("actionlint"), "-no-color", *sorted(map(str, WORKFLOWS.glob("*.yml")))],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def test_workflows_pass_zizmor():
    r = subprocess.run([_tool("zizmor"), "--offline", "--no-progress", "--format", "plain", str(WORKFLOWS)],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr


def test_actions_are_pinned_by_commit_and_permissions_are_least():
    for wf in WORKFLOWS.glob("*.yml"):
        text = wf.read_text()
        for use in re.findall(r"uses:\s*(\S+)", text):
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", use), (wf.name, use)
        doc = yaml.safe_load(text)
        assert doc["permissions"] == {}
        for job in doc["jobs"].values():
            assert job["permissions"] == {"contents": "read"}
            for step in job["steps"]:
                if "actions/checkout@" in step.get("uses", ""):
                    assert step["with"]["persist-credentials"] is False


def test_release_runs_matrix_then_build_publish_and_keeps_the_bundle():
    doc = yaml.safe_load((WORKFLOWS / "release.yml").read_text())
    on = doc[True]  # YAML 1.1 reads the key `on` as True
    assert on["push"]["tags"] == ["v*"] and "workflow_dispatch" in on
    job = doc["jobs"]["release"]
    assert job["needs"] == "matrix" and "fromJSON(needs.matrix.outputs.matrix)" in job["strategy"]["matrix"]
    assert job["concurrency"]["group"] == "release-${{ matrix.name }}"
    runs = [s.get("name", "") + s.get("run", "") + s.get("uses", "") for s in job["steps"]]
    order = [next(i for i, r in enumerate(runs) if key in r)
             for key in ("free disk", "install", "check the runner", "actions/cache/restore", "--until download",
                         "actions/cache/save", 'buildovexport run "$RECIPE" --set output.root=dist',
                         "ovexport publish", "actions/upload-artifact")]
    assert order == sorted(order) and len(set(order)) == len(order)
    publish = next(s for s in job["steps"] if "ovexport publish" in s.get("run", ""))
    assert publish["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    assert set(ci[True]) == {"push", "pull_request"}
    assert any(s.get("run") == "bash .ci/run" for s in ci["jobs"]["test"]["steps"])


def test_release_job_runs_where_the_matrix_says_and_builds_where_the_disk_is():
    job = yaml.safe_load((WORKFLOWS / "release.yml").read_text())["jobs"]["release"]
    assert job["runs-on"] == "${{ matrix.runs_on }}"
    steps = {s.get("name"): s for s in job["steps"]}
    free = steps["free disk space"]["run"]
    for toolchain in ("/usr/share/dotnet", "/usr/local/lib/android", "/opt/ghc", "/opt/hostedtoolcache/CodeQL"):
        assert toolchain in free
    # /mnt, when larger, holds what the build writes: dist/ and the Hub cache the restore/save steps name
    assert "mount --bind /mnt/ovexport/dist dist" in free
    assert 'mount --bind /mnt/ovexport/hub "$HOME/.cache/huggingface/hub"' in free
    check = steps["check the runner has the memory and disk the recipe needs"]["run"]
    assert "df --output=avail -BG dist" in check and "DISK_GB" in check and "MEMORY_GB" in check
    restore, save = steps["restore the Hub cache"], steps["save the Hub cache"]
    assert restore["with"] == save["with"] == {"path": "~/.cache/huggingface/hub", "key": "${{ matrix.cache_key }}"}
    assert "steps.hub-cache.outputs.cache-hit != 'true'" in save["if"] and restore["id"] == "hub-cache"
    assert "download.pytorch.org/whl/cpu" in steps["install"]["run"]
    matrix = yaml.safe_load((WORKFLOWS / "release.yml").read_text())["jobs"]["matrix"]
    compute = next(s for s in matrix["steps"] if s.get("id") == "matrix")
    assert "--large-runner" in compute["run"] and compute["env"]["LARGE_RUNNER"] == "${{ vars.OVEXPORT_LARGE_RUNNER }}"


def test_matrix_entries_carry_what_the_workflow_reads():
    entries = json.loads(CliRunner().invoke(cli, ["matrix", str(REPO / "pipeline.yaml")]).output)["include"]
    text = (WORKFLOWS / "release.yml").read_text()
    read = set(re.findall(r"(?<![\w.])matrix\.(\w+)", text))
    for e in entries:
        assert set(e) == {"recipe", "name", "version", "repo_id", "source", "cache_key", "memory_gb", "disk_gb",
                          "runs_on"}
        assert read <= set(e), read - set(e)
    by_name = {e["name"]: e for e in entries}
    # the disk estimate follows the artifacts: fp16 has no compressed copy, int8 the largest one
    disk = [by_name[n]["disk_gb"] for n in ("tiny-minicpmv2-int4", "minicpmv2-fp16", "minicpmv2-int4",
                                           "minicpmv2-int8")]
    assert disk == sorted(disk) and len(set(disk)) == 4
    assert by_name["minicpmv2-int4"]["disk_gb"] <= by_name["minicpmv2-int4-int8vision"]["disk_gb"]
    assert {e["runs_on"] for e in entries} == {"ubuntu-24.04"}
    assert all(e["disk_gb"] <= 30 and e["memory_gb"] <= 16 for e in entries)


def test_a_recipe_larger_than_the_standard_runner_needs_a_large_runner_label(tmp_path):
    recipe = tmp_path / "fp32.yaml"
    recipe.write_text((REPO / "recipes" / "minicpmv2-int4.yaml").read_text().replace("name: minicpmv2-int4",
                                                                                     "name: minicpmv2-int4-fp32")
                      .replace("weight_dtype: fp16", "weight_dtype: fp32"))
    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"recipes:\n  - {recipe}\n  - {REPO / 'recipes' / 'tiny-minicpmv2-int4.yaml'}\n")
    r = CliRunner().invoke(cli, ["matrix", str(pipeline)])
    assert r.exit_code != 0 and "minicpmv2-int4-fp32 needs" in r.output and "--large-runner" in r.output
    r = CliRunner().invoke(cli, ["matrix", str(pipeline), "--large-runner", "ubuntu-24.04-8core"])
    assert r.exit_code == 0, r.output
    big, tiny = json.loads(r.output)["include"]
    assert big["disk_gb"] > 30 and big["runs_on"] == "ubuntu-24.04-8core" and tiny["runs_on"] == "ubuntu-24.04"


def test_compressed_size_estimate_matches_the_measured_llm_irs():
    """The LLM IR's .bin as measured: 2.04 GB for int4 ratio 0.6 (BENCHMARKS.md), 1.58 GB for ratio 1.0
    (recipes/minicpmv2-int4-ratio1.yaml)."""
    from ovexport.models.minicpmv2.resources import compressed_bytes
    from ovexport.recipe.load import load_recipe

    for name, measured in (("minicpmv2-int4", 2.04e9), ("minicpmv2-int4-ratio1", 1.58e9)):
        policy = load_recipe(REPO / "recipes" / f"{name}.yaml").compression.llm
        assert abs(compressed_bytes("llm", policy, 2) - measured) < 0.01e9, name


def test_matrix_prints_one_entry_per_recipe_with_memory_and_disk(tmp_path):
    r = CliRunner().invoke(cli, ["matrix", str(REPO / "pipeline.yaml")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    entries = json.loads(r.output)["include"]
    listed = yaml.safe_load((REPO / "pipeline.yaml").read_text())["recipes"]
    assert [e["recipe"] for e in entries] == listed
    for e in entries:
        assert e["memory_gb"] > 0 and e["disk_gb"] > 0 and e["version"]
    tiny = next(e for e in entries if e["name"] == "tiny-minicpmv2-int4")
    full = next(e for e in entries if e["name"] == "minicpmv2-int4")
    assert tiny["memory_gb"] < full["memory_gb"] and full["cache_key"].startswith("hf-openbmb--MiniCPM-V-2-")

    pipeline = tmp_path / "pipeline.yaml"
    pipeline.write_text(f"recipes:\n  - {REPO / 'recipes' / 'tiny-minicpmv2-int4.yaml'}\n"
                        "publish:\n  repo_id_prefix: myorg/ov-\n")
    entries = json.loads(CliRunner().invoke(cli, ["matrix", str(pipeline)]).output)["include"]
    assert entries[0]["repo_id"] == "myorg/ov-tiny-minicpmv2-int4"


def test_memory_comes_from_the_measured_peak_of_each_kind_of_build():
    """int4 (data-free) and int8-vision builds get their measured peak RSS plus a margin; a build nobody measured
    (an fp16 LLM compiled for validation) keeps the whole standard runner."""
    from ovexport.models.minicpmv2 import resources as res
    from ovexport.recipe.load import load_recipe

    def recipe(name):
        return load_recipe(REPO / "recipes" / f"{name}.yaml")

    int4, int8vision = recipe("minicpmv2-int4"), recipe("minicpmv2-int4-int8vision")
    assert res.measured_peak_bytes(int4) == res.MEASURED_PEAK_BYTES["weight_compression"]
    corrected = load_recipe(REPO / "recipes" / "minicpmv2-int4-int8vision.yaml",
                            overrides=["compression.image_encoder.bias_correction=true"])
    uncorrected = load_recipe(REPO / "recipes" / "minicpmv2-int4-int8vision.yaml",
                              overrides=["compression.image_encoder.bias_correction=false"])
    assert res.measured_peak_bytes(corrected) == res.MEASURED_PEAK_BYTES["int8_static_image_encoder"]
    assert res.measured_peak_bytes(uncorrected) == \
        res.MEASURED_PEAK_BYTES["int8_static_image_encoder_no_bias_correction"]
    assert res.measured_peak_bytes(int8vision) in (res.measured_peak_bytes(corrected),
                                                   res.measured_peak_bytes(uncorrected))
    assert res.measured_peak_bytes(recipe("synthetic-full-minicpmv2-int4")) == res.measured_peak_bytes(int4)
    assert res.measured_peak_bytes(recipe("minicpmv2-fp16")) is None
    assert res.memory_gb(recipe("minicpmv2-fp16")) == res.UNMEASURED_MEMORY_GB
    for r in (int4, int8vision):
        need = res.measured_peak_bytes(r) * res.MEMORY_MARGIN / 2**30 + res.RUNNER_OVERHEAD_GB
        assert need <= res.memory_gb(r) < need + 1
    assert res.memory_gb(int4) < res.memory_gb(int8vision) < res.UNMEASURED_MEMORY_GB
