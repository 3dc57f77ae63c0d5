"""The run cache: outputs shared across recipes by fingerprint, verified before use, never half-trusted."""
from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from engine_dummy_steps import (DummyRecipe, IsoKill, Output, StepA, StepB, StepC,  # noqa: E402
                                make_registry)

from ovexport.engine import Lock, RunCache, Step, StepContext, plan, run, summary_table  # noqa: E402
from ovexport.engine.run_cache import ENV_DIR, ENV_VERIFY, META, cache_dir_for  # noqa: E402

pytestmark = pytest.mark.unit

ABC = ["a", "b", "c"]
EXPLODE = {"a": "raise", "b": "raise", "c": "raise"}  # not fingerprinted: a step that runs raises


@pytest.fixture(autouse=True)
def _default_cache_location(monkeypatch):
    monkeypatch.delenv(ENV_DIR, raising=False)
    monkeypatch.delenv(ENV_VERIFY, raising=False)


@pytest.fixture
def reg():
    return make_registry(StepA, StepB, StepC)


def recipe(root: Path, name: str, steps=ABC, **kw: Any) -> DummyRecipe:
    return DummyRecipe(name=name, steps=steps, output=Output(root=str(root)), **kw)


def go(r, reg, **kw):
    con = Console(file=io.StringIO(), width=200, force_terminal=False)
    res = run(r, reg, console=con, **kw)
    return res, con.file.getvalue()


def statuses(res) -> dict[str, str]:
    return {row.name: row.status for row in res.rows}


def cache_of(root: Path) -> RunCache:
    return RunCache(root / ".work" / ".runcache")


def entry_of(res, step: str, root: Path) -> Path:
    return cache_of(root).entry_dir(res.row(step).fingerprint)


def test_second_recipe_with_the_same_steps_takes_every_output_from_the_cache(tmp_path, reg):
    first, _ = go(recipe(tmp_path, "one"), reg)
    assert set(statuses(first).values()) == {"ran"}
    two = recipe(tmp_path, "two", behaviour=EXPLODE)  # would raise if any step ran
    rows = plan(two, reg)
    assert [r.status for r in rows] == ["cached"] * 3
    assert all(r.reason.startswith("never ran; from run cache: recipe 'one', ran in ") for r in rows)
    res, out = go(two, reg)
    assert statuses(res) == {"a": "cached", "b": "cached", "c": "cached"}
    assert "↺ a  from run cache: recipe 'one'" in out and "▶" not in out
    assert res.row("c").reason.startswith("from run cache: recipe 'one'")
    # same fingerprints and digests in both locks: the fingerprint ignores name and paths
    l1, l2 = Lock.for_work(first.work), Lock.for_work(res.work)
    for s in ABC:
        assert l1.get(s)["fingerprint"] == l2.get(s)["fingerprint"]
        assert l1.get(s)["output"]["digest"] == l2.get(s)["output"]["digest"]
        assert l2.get(s)["metrics"] == l1.get(s)["metrics"]
        assert l2.get(s)["run_cache"]["origin"]["recipe"] == "one"
    # hard links, not copies: one inode for the first recipe's file, the entry's, the second's
    f1, f2 = first.work / "art_b" / "sub" / "b.txt", res.work / "art_b" / "sub" / "b.txt"
    assert f2.read_text() == "a1+b1" and os.stat(f1).st_ino == os.stat(f2).st_ino
    assert os.stat(f1).st_nlink == 3
    # the second recipe is then up to date by its own lock
    res, _ = go(two, reg)
    assert set(statuses(res).values()) == {"up to date"}
    con = Console(file=io.StringIO(), width=200)
    con.print(summary_table(go(recipe(tmp_path, "three"), reg)[0]))
    assert "cached" in con.file.getvalue() and "from run cache: recipe 'one'" in con.file.getvalue()


def test_changed_params_miss_the_cache_and_their_result_is_cached_in_turn(tmp_path, reg):
    go(recipe(tmp_path, "one"), reg)
    res, _ = go(recipe(tmp_path, "two", knobs={"b": 2}), reg)
    assert statuses(res) == {"a": "cached", "b": "ran", "c": "ran"}
    assert (res.work / "art_c" / "c.txt").read_text() == "a1+b2+c1 a=True"
    res, _ = go(recipe(tmp_path, "three", knobs={"b": 2}, behaviour=EXPLODE), reg)
    assert statuses(res) == {"a": "cached", "b": "cached", "c": "cached"}
    assert res.row("b").reason.startswith("from run cache: recipe 'two'")
    assert (res.work / "art_c" / "c.txt").read_text() == "a1+b2+c1 a=True"


def test_forced_step_runs_even_when_cached(tmp_path, reg):
    go(recipe(tmp_path, "one"), reg)
    res, _ = go(recipe(tmp_path, "two"), reg, force=["b"])
    assert statuses(res) == {"a": "cached", "b": "ran", "c": "cached"}


def test_entry_edited_through_a_hard_link_is_not_trusted_and_is_rebuilt(tmp_path, reg):
    first, _ = go(recipe(tmp_path, "one"), reg)
    (first.work / "art_a" / "a.txt").write_text("a9")  # in place: the entry's inode too
    entry = entry_of(first, "a", tmp_path)
    assert plan(recipe(tmp_path, "two"), reg)[0].status == "will run"
    assert entry.is_dir()  # plan does not delete
    res, out = go(recipe(tmp_path, "two"), reg)
    assert "not trusted (files changed, missing or added since it was stored)" in out
    assert statuses(res)["a"] == "ran"
    assert (res.work / "art_a" / "a.txt").read_text() == "a1"
    # the bad entry was replaced by the new output
    assert json.loads((entry / META).read_text())["origin"]["recipe"] == "two"
    assert statuses(go(recipe(tmp_path, "three"), reg)[0])["a"] == "cached"


@pytest.mark.parametrize("damage", ["garbage meta", "no meta", "meta of another fingerprint",
                                    "records do not match digest", "missing file", "extra file"])
def test_corrupted_or_half_written_entry_is_ignored_and_rebuilt(tmp_path, reg, damage):
    first, _ = go(recipe(tmp_path, "one"), reg)
    entry = entry_of(first, "b", tmp_path)
    meta = json.loads((entry / META).read_text())
    if damage == "garbage meta":
        (entry / META).write_text('{"version": 1, "finger')
    elif damage == "no meta":
        (entry / META).unlink()
    elif damage == "meta of another fingerprint":
        (entry / META).write_text(json.dumps({**meta, "fingerprint": "0" * 64}))
    elif damage == "records do not match digest":
        meta["files"]["sub/b.txt"]["hash"] = "xxh3:" + "0" * 32
        (entry / META).write_text(json.dumps(meta))
    elif damage == "missing file":
        (entry / "out" / "sub" / "b.txt").unlink()
    else:
        (entry / "out" / "sub" / "x.txt").write_text("x")
    res, out = go(recipe(tmp_path, "two"), reg)
    assert statuses(res) == {"a": "cached", "b": "ran", "c": "cached"}
    assert "run cache entry" in out and "not trusted" in out
    assert (res.work / "art_b" / "sub" / "b.txt").read_text() == "a1+b1"
    assert cache_of(tmp_path).lookup(res.row("b").fingerprint) is not None  # rebuilt


def test_content_verification_catches_an_edit_that_kept_size_and_mtime(tmp_path, reg):
    first, _ = go(recipe(tmp_path, "one"), reg)
    f = entry_of(first, "a", tmp_path) / "out" / "a.txt"
    st = f.stat()
    f.write_text("a7")  # same size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    fp = first.row("a").fingerprint
    assert RunCache(cache_of(tmp_path).root, verify="stat").lookup(fp) is not None  # by design
    res, out = go(recipe(tmp_path, "two"), reg,
                  run_cache=RunCache(cache_of(tmp_path).root, verify="content"))
    assert "file contents do not match the stored digest" in out
    assert statuses(res)["a"] == "ran" and (res.work / "art_a" / "a.txt").read_text() == "a1"


def test_failed_step_stores_nothing_and_a_dead_runs_temp_entry_is_never_used(tmp_path, reg):
    with pytest.raises(ValueError):
        go(recipe(tmp_path, "one", behaviour={"b": "raise"}), reg)
    stored = {m["step"] for _, m in cache_of(tmp_path).entries()}
    assert stored == {"a"}
    # a run killed while storing b's entry leaves a temp dir named after a dead pid
    res, _ = go(recipe(tmp_path, "two"), reg)
    fp = res.row("b").fingerprint
    entry = cache_of(tmp_path).entry_dir(fp)
    stale = entry.parent / f".tmp-{fp}-999999999-deadbeef"
    os.rename(entry, stale)
    (stale / META).unlink()
    assert cache_of(tmp_path).lookup(fp) is None
    res, _ = go(recipe(tmp_path, "three"), reg)
    assert statuses(res) == {"a": "cached", "b": "ran", "c": "cached"}
    assert not stale.exists()  # cleaned when b's new entry was stored
    assert cache_of(tmp_path).lookup(fp) is not None


def test_killed_isolated_step_leaves_no_entry(tmp_path):
    reg = make_registry(StepA, IsoKill)
    sentinel = tmp_path / "sentinel"
    r = recipe(tmp_path, "one", steps=["a", "iso_kill"], behaviour={"sentinel": str(sentinel)})
    with pytest.raises(Exception, match="killed by SIGKILL"):
        go(r, reg)
    assert {m["step"] for _, m in cache_of(tmp_path).entries()} == {"a"}
    assert not any(p.name.startswith(".tmp-") for p in cache_of(tmp_path).root.rglob("*"))
    res, _ = go(recipe(tmp_path, "two", steps=["a", "iso_kill"],
                       behaviour={"sentinel": str(sentinel)}), reg)
    assert statuses(res) == {"a": "cached", "iso_kill": "ran"}
    assert {m["step"] for _, m in cache_of(tmp_path).entries()} == {"a", "iso_kill"}


def test_disabled_cache_runs_everything_and_writes_nothing(tmp_path, reg, monkeypatch):
    go(recipe(tmp_path, "one"), reg, run_cache=False)
    assert not cache_of(tmp_path).root.exists()
    res, _ = go(recipe(tmp_path, "two"), reg, run_cache=False)
    assert set(statuses(res).values()) == {"ran"} and res.run_cache is None
    monkeypatch.setenv(ENV_DIR, "off")
    assert cache_dir_for(tmp_path) is None
    res, _ = go(recipe(tmp_path, "three"), reg)
    assert set(statuses(res).values()) == {"ran"} and not cache_of(tmp_path).root.exists()
    assert all(r.status == "will run" for r in plan(recipe(tmp_path, "four"), reg))


def test_env_moves_the_cache_so_different_output_roots_share_it(tmp_path, reg, monkeypatch):
    monkeypatch.setenv(ENV_DIR, str(tmp_path / "shared"))
    go(recipe(tmp_path / "r1", "one"), reg)
    res, _ = go(recipe(tmp_path / "r2", "one", behaviour=EXPLODE), reg)
    assert set(statuses(res).values()) == {"cached"}
    assert res.run_cache == tmp_path / "shared" and not (tmp_path / "r1/.work/.runcache").exists()


class LinkOut(Step):
    """Symlinks an outside file into its output, as the download step links into the HF cache."""
    name = "link"
    produces = "art_link"
    isolate = False

    def params(self, recipe: Any) -> dict:
        return {"target": recipe.knobs["target"]}

    def run(self, ctx: StepContext) -> None:
        if ctx.recipe.behaviour.get("link") == "raise":
            raise ValueError("ran")
        os.symlink(ctx.recipe.knobs["target"], ctx.out / "weights.bin")
        os.symlink("weights.bin", ctx.out / "alias.bin")  # relative, inside the output


class Stamp(StepA):
    """Not a pure function of its fingerprint: never shared."""
    name = "stamp"
    produces = "art_stamp"
    run_cache = False


def test_symlinks_are_restored_as_symlinks_and_opted_out_steps_are_not_cached(tmp_path):
    reg = make_registry(LinkOut, Stamp)
    target = tmp_path / "hf" / "blob"
    target.parent.mkdir()
    target.write_bytes(b"w" * 100)
    knobs = {"target": str(target)}
    first, _ = go(recipe(tmp_path, "one", steps=["link", "stamp"], knobs=knobs), reg)
    res, _ = go(recipe(tmp_path, "two", steps=["link", "stamp"], knobs=knobs,
                       behaviour={"link": "raise"}), reg)
    assert statuses(res) == {"link": "cached", "stamp": "ran"}
    out = res.work / "art_link"
    assert os.readlink(out / "weights.bin") == str(target)
    assert os.readlink(out / "alias.bin") == "weights.bin"
    assert (out / "alias.bin").read_bytes() == b"w" * 100
    assert {m["step"] for _, m in cache_of(tmp_path).entries()} == {"link"}
    # the linked file changing (e.g. a new HF snapshot in place) invalidates the entry
    target.write_bytes(b"v" * 50)
    res, _ = go(recipe(tmp_path, "three", steps=["link"], knobs=knobs), reg)
    assert statuses(res) == {"link": "ran"}


def test_clear_removes_entries_but_not_recipe_artifacts(tmp_path, reg):
    first, _ = go(recipe(tmp_path, "one"), reg)
    cache = cache_of(tmp_path)
    assert cache.clear(step="b")[0] == 1
    assert sorted(m["step"] for _, m in cache.entries()) == ["a", "c"]
    n, _ = cache.clear()
    assert n == 2 and cache.entries() == []
    assert (first.work / "art_b" / "sub" / "b.txt").read_text() == "a1+b1"
    assert set(statuses(go(recipe(tmp_path, "one"), reg)[0]).values()) == {"up to date"}
