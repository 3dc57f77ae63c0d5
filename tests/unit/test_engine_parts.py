"""fingerprint, digest_dir/stat_matches, atomic_dir, clean_stale_temps, Lock, StepRegistry."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ovexport.engine import (ENGINE_VERSION, Lock, Step, StepRegistry, atomic_dir,
                             atomic_write_text, clean_stale_temps, digest_dir, fingerprint,
                             stat_matches)
from ovexport.engine.fingerprint import canonical_json
from ovexport.engine.peak_rss import PeakMeter
from ovexport.errors import PlanError

pytestmark = pytest.mark.unit


# ----------------------------------------------------------------------------- fingerprint

def test_fingerprint_is_canonical_and_sensitive():
    fp = fingerprint("s", {"b": 1, "a": [1, 2]}, {"x": "d1"}, {"tool": "1.0"})
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp == fingerprint("s", {"a": (1, 2), "b": 1}, {"x": "d1"}, {"tool": "1.0"})
    others = [fingerprint("t", {"b": 1, "a": [1, 2]}, {"x": "d1"}, {"tool": "1.0"}),
              fingerprint("s", {"b": 2, "a": [1, 2]}, {"x": "d1"}, {"tool": "1.0"}),
              fingerprint("s", {"b": 1, "a": [1, 2]}, {"x": "d2"}, {"tool": "1.0"}),
              fingerprint("s", {"b": 1, "a": [1, 2]}, {"x": "d1"}, {"tool": "1.1"})]
    assert len({fp, *others}) == 5
    assert ENGINE_VERSION
    assert canonical_json({"p": Path("a/b")}) == '{"p":"a/b"}'
    with pytest.raises(TypeError):
        canonical_json({"x": object()})


def _tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("bbb")
    (root / "sub" / "a.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 5))  # > 1 chunk


def test_digest_dir_content_only_and_deterministic(tmp_path):
    _tree(tmp_path / "x")
    d1, files = digest_dir(tmp_path / "x")
    assert list(files) == ["b.txt", "sub/a.bin"]
    assert files["b.txt"]["size"] == 3 and set(files["b.txt"]) == {"size", "mtime_ns", "hash"}
    # a copy with other mtimes has the same digest; a rename or an edit changes it
    import shutil
    shutil.copytree(tmp_path / "x", tmp_path / "y", copy_function=shutil.copy)
    assert digest_dir(tmp_path / "y")[0] == d1
    (tmp_path / "y" / "b.txt").rename(tmp_path / "y" / "c.txt")
    assert digest_dir(tmp_path / "y")[0] != d1


def test_digest_dir_follows_symlinks(tmp_path):
    _tree(tmp_path / "real")
    link = tmp_path / "linked"
    (link / "sub").mkdir(parents=True)
    os.symlink(tmp_path / "real" / "b.txt", link / "b.txt")
    os.symlink(tmp_path / "real" / "sub" / "a.bin", link / "sub" / "a.bin")
    os.symlink(tmp_path / "nowhere", link / "dangling")
    assert digest_dir(link)[0] == digest_dir(tmp_path / "real")[0]
    dirlink = tmp_path / "dirlink"
    os.symlink(tmp_path / "real", dirlink)
    assert digest_dir(dirlink)[0] == digest_dir(tmp_path / "real")[0]


def test_stat_matches(tmp_path):
    root = tmp_path / "x"
    _tree(root)
    _, files = digest_dir(root)
    assert stat_matches(root, files)
    assert not stat_matches(tmp_path / "missing", files)
    (root / "extra").write_text("")
    assert not stat_matches(root, files)
    (root / "extra").unlink()
    assert stat_matches(root, files)
    st = (root / "b.txt").stat()
    os.utime(root / "b.txt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert not stat_matches(root, files)
    _, files = digest_dir(root)
    (root / "b.txt").write_text("bbbb")
    assert not stat_matches(root, files)
    (root / "b.txt").unlink()
    assert not stat_matches(root, files)


# ----------------------------------------------------------------------------- atomic

def test_atomic_dir_replaces_on_success(tmp_path):
    final = tmp_path / "out"
    with atomic_dir(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(f".tmp-out-{os.getpid()}-")
        (tmp / "f").write_text("1")
        assert not final.exists()
    assert (final / "f").read_text() == "1"
    with atomic_dir(final) as tmp:
        (tmp / "g").write_text("2")
        assert (final / "f").exists()  # old content visible until success
    assert sorted(os.listdir(final)) == ["g"]
    assert os.listdir(tmp_path) == ["out"]


@pytest.mark.parametrize("exc", [ValueError, KeyboardInterrupt])
def test_atomic_dir_cleans_up_on_exception(tmp_path, exc):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old").write_text("old")
    with pytest.raises(exc):
        with atomic_dir(final) as tmp:
            (tmp / "new").write_text("new")
            raise exc()
    assert os.listdir(tmp_path) == ["out"] and os.listdir(final) == ["old"]


def test_atomic_write_text(tmp_path):
    p = tmp_path / "d" / "f.json"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two" and os.listdir(p.parent) == ["f.json"]


def test_clean_stale_temps_only_removes_dead_runs(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale_tmp = tmp_path / f".tmp-my-art-{dead.pid}-abcd1234"
    stale_old = tmp_path / f".old-my-art-{dead.pid}-abcd1234"
    mine = tmp_path / f".tmp-art-{os.getpid()}-abcd1234"
    live = tmp_path / f".tmp-art-{os.getppid()}-abcd1234"
    stale_file = tmp_path / f".tmp-ovexport.lock.json-{dead.pid}-ffff0000"
    for d in (stale_tmp, stale_old, mine, live):
        d.mkdir()
        (d / "x").write_text("x")
    stale_file.write_text("{")
    (tmp_path / "keep").mkdir()
    removed = clean_stale_temps(tmp_path)
    assert sorted(p.name for p in removed) == sorted(
        p.name for p in (stale_tmp, stale_old, stale_file))
    assert sorted(os.listdir(tmp_path)) == sorted(["keep", mine.name, live.name])
    assert clean_stale_temps(tmp_path / "missing") == []


# ----------------------------------------------------------------------------- lock

def test_lock_roundtrip_missing_and_corrupt(tmp_path):
    lk = Lock.for_work(tmp_path)
    assert lk.steps == {} and lk.warning is None
    entry = {"fingerprint": "f", "params": {}, "inputs": {}, "tools": {},
             "output": {"path": "art", "digest": "d", "files": {}}, "metrics": None,
             "finished_at": "now", "duration_s": 1.0, "peak_rss_bytes": 1}
    lk.set("s", entry)
    lk.save()
    data = json.loads((tmp_path / "ovexport.lock.json").read_text())
    assert data == {"version": 1, "steps": {"s": entry}}
    assert Lock.for_work(tmp_path).get("s") == entry
    for bad in ("not json", "[]", '{"version": 2, "steps": {}}',
                '{"version": 1, "steps": {"s": {"fingerprint": "f"}}}'):
        (tmp_path / "ovexport.lock.json").write_text(bad)
        lk = Lock.for_work(tmp_path)
        assert lk.steps == {} and "corrupt lock file" in lk.warning


# ----------------------------------------------------------------------------- registry

class _S(Step):
    name = "s"
    produces = "art_s"

    def params(self, recipe):
        return {}


def test_registry():
    reg = StepRegistry()
    assert reg.register(_S) is _S
    reg.register(_S)  # idempotent
    assert "s" in reg and reg.names() == ["s"] and isinstance(reg.get("s"), _S)
    assert reg.get("s") is not reg.get("s")
    with pytest.raises(PlanError, match=r"unknown step 'zz' \(fix: use one of: s\)"):
        reg.get("zz")

    class Other(_S):
        pass
    with pytest.raises(ValueError, match="already registered"):
        reg.register(Other)

    class BadConsumes(Step):
        name = "bad"
        produces = "x"
        consumes = "art_s"
    with pytest.raises(TypeError, match="tuple of artifact names"):
        reg.register(BadConsumes)

    class NoProduces(Step):
        name = "np"
    with pytest.raises(TypeError, match="exactly one artifact"):
        reg.register(NoProduces)


def test_registry_imports_the_modules_that_register_steps_when_first_asked(tmp_path, monkeypatch):
    (tmp_path / "lazy_holder.py").write_text(
        "from ovexport.engine.step import StepRegistry\nREG = StepRegistry(modules=('lazy_steps',))\n")
    (tmp_path / "lazy_steps.py").write_text(
        "from lazy_holder import REG\nfrom ovexport.engine.step import Step\n"
        "@REG.register\nclass A(Step):\n    name = 'a'\n    produces = 'x'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for m in ("lazy_holder", "lazy_steps"):
        monkeypatch.delitem(sys.modules, m, raising=False)
    import lazy_holder

    assert "lazy_steps" not in sys.modules
    assert lazy_holder.REG.names() == ["a"] and "lazy_steps" in sys.modules
    assert lazy_holder.REG.pipeline_order() == ["a"]
    with pytest.raises(NotImplementedError):
        Step.params(_S(), None)


def test_peak_meter_sampling_fallback():
    with PeakMeter(force_sampling=True) as m:
        block = b"\x03" * (64 * 1024 * 1024)
        import time
        time.sleep(0.15)
        del block
    assert m.mode == "sample" and m.peak >= 64 * 1024 * 1024
    with PeakMeter() as m2:
        block = b"\x04" * (64 * 1024 * 1024)
        del block
    assert m2.peak >= 64 * 1024 * 1024


def test_pipeline_order_follows_artifacts_and_keeps_chains_together():
    class A(Step):
        name, produces = "a", "x"

    class B1(Step):
        name, consumes, produces = "b1", ("x",), "y1"

    class B2(Step):
        name, consumes, produces = "b2", ("x",), "y2"

    class C1(Step):  # continues b1's chain: runs before b2 although registered after it
        name, consumes, produces = "c1", ("y1",), "z1"

    class D(Step):
        name, consumes, optional, produces = "d", ("z1", "y2"), ("e_out",), "w"

    class E(Step):  # optional input of d: must run before it
        name, consumes, produces = "e", ("y2",), "e_out"

    reg = StepRegistry()
    for cls in (D, C1, B1, B2, E, A):
        reg.register(cls)
    assert reg.pipeline_order() == ["a", "b1", "c1", "b2", "e", "d"]
