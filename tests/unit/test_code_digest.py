"""Fingerprints cover the code a step really runs: its import closure plus the family code behind its roles.
Edits are made on a temporary copy of the package (``package_dir`` pointed at it), never on the real files."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import ovexport
import ovexport.steps  # noqa: F401 - registers the steps
from ovexport.engine import code_digest as cd
from ovexport.engine.step import get_step

pytestmark = pytest.mark.unit

PKG = Path(ovexport.__file__).resolve().parent


@pytest.fixture
def pkg_copy(tmp_path, monkeypatch):
    """A copy of the ovexport sources that every digest reads instead of the real package."""
    copy = tmp_path / "ovexport"
    shutil.copytree(PKG, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(cd, "_PKG_ROOT", copy)
    return copy


def _edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# edited\n")


def _code(step: str) -> str:
    return get_step(step).tool_versions()["code"]


def test_a_missing_path_is_an_error_not_an_empty_digest():
    with pytest.raises(cd.CodeDigestError, match="models/minicpmv2/renamed.py"):
        cd.code_digest("models/minicpmv2/renamed.py")
    with pytest.raises(cd.CodeDigestError, match="ovexport.renamed"):
        cd.modules_digest("ovexport.renamed")


def test_an_import_of_a_renamed_module_is_an_error(pkg_copy):
    (pkg_copy / "exporter" / "convert.py").write_text(
        (pkg_copy / "exporter" / "convert.py").read_text() + "\nfrom ovexport.exporter.renamed import x\n")
    with pytest.raises(cd.CodeDigestError, match="ovexport.exporter.renamed"):
        _code("convert_llm")


def test_the_closure_follows_relative_and_submodule_imports(tmp_path, monkeypatch):
    pkg = tmp_path / "fakepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import heavy\n")
    (pkg / "heavy.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("import os\nfrom .sub import c\n\ndef f():\n    from fakepkg import lazy\n")
    (pkg / "sub" / "c.py").write_text("from ..b import thing\n")
    (pkg / "b.py").write_text("thing = 1\n")
    (pkg / "lazy.py").write_text("")
    (pkg / "unused.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    got = set(cd.module_closure("fakepkg.a"))
    # fakepkg itself runs as the parent package of a: hashed, its own imports (heavy) not followed
    assert got == {"fakepkg", "fakepkg.a", "fakepkg.sub", "fakepkg.sub.c", "fakepkg.b", "fakepkg.lazy"}
    before = cd.modules_digest("fakepkg.a")
    _edit(pkg / "b.py")
    assert cd.modules_digest("fakepkg.a") != before
    before = cd.modules_digest("fakepkg.a")
    _edit(pkg / "unused.py")
    assert cd.modules_digest("fakepkg.a") == before


def test_convert_is_not_invalidated_by_the_trainer_but_by_the_model_code(pkg_copy):
    convert, stateful = _code("convert_llm"), _code("make_stateful")
    _edit(pkg_copy / "fixtures" / "trained_minicpmv2" / "train.py")
    assert (_code("convert_llm"), _code("make_stateful")) == (convert, stateful)
    _edit(pkg_copy / "models" / "minicpmv2" / "llm.py")
    assert _code("convert_llm") != convert


@pytest.mark.parametrize("module", ["slicing.py", "prompt.py"])
def test_compress_hashes_the_family_code_its_calibration_runs(pkg_copy, module):
    compress, validate = _code("compress"), _code("validate")
    _edit(pkg_copy / "models" / "minicpmv2" / module)
    assert _code("compress") != compress
    assert _code("validate") != validate


def test_a_step_hashes_its_own_code_not_its_siblings(pkg_copy):
    convert = _code("convert_llm")
    _edit(pkg_copy / "steps" / "package.py")
    _edit(pkg_copy / "validators" / "llm.py")
    assert _code("convert_llm") == convert
    _edit(pkg_copy / "steps" / "convert.py")
    assert _code("convert_llm") != convert


@pytest.mark.parametrize("edited", ["fixtures/trained_minicpmv2/train.py", "synthetic/vqa_task.py",
                                    "synthetic/drawing.py"])
def test_the_trained_checkpoint_hashes_the_trainer_and_the_task(pkg_copy, edited):
    from ovexport.fixtures.trained_minicpmv2.build import cache_key
    from ovexport.recipe.load import load_recipe

    recipe = load_recipe(str(PKG.parent / "recipes" / "tiny-trained-minicpmv2-int4.yaml"))
    before = get_step("download").params(recipe)["synth"]
    key = cache_key(0)
    _edit(pkg_copy / edited)
    assert get_step("download").params(recipe)["synth"] != before
    assert cache_key(0) != key, "the cached checkpoint is keyed by the same code"
