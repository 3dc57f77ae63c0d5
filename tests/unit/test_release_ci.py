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
    runs = [s.get("run", "") + s.get("uses", "") for s in job["steps"]]
    order = [next(i for i, r in enumerate(runs) if key in r)
             for key in ("actions/cache/restore", "ovexport run", "ovexport publish", "actions/upload-artifact")]
    assert order == sorted(order)
    publish = next(s for s in job["steps"] if "ovexport publish" in s.get("run", ""))
    assert publish["env"]["HF_TOKEN"] == "${{ secrets.HF_TOKEN }}"
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    assert set(ci[True]) == {"push", "pull_request"}
    assert any(s.get("run") == "bash .ci/run" for s in ci["jobs"]["test"]["steps"])


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
