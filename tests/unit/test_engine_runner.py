"""plan()/run(): skipping, reruns, --force, --until, validation, failures, lock handling."""
from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from rich.console import Console

_HERE = str(Path(__file__).resolve().parent)  # engine_dummy_steps must be importable by
if _HERE not in sys.path:                      # name here and in spawned children
    sys.path.insert(0, _HERE)
from engine_dummy_steps import (StepA, StepB, StepC, StepOptA, make_recipe,  # noqa: E402
                                make_registry)

from ovexport.engine import LOCK_NAME, Lock, plan, plan_table, run, summary_table  # noqa: E402
from ovexport.errors import PlanError  # noqa: E402

pytestmark = pytest.mark.unit

ABC = ["a", "b", "c"]


@pytest.fixture
def reg():
    return make_registry(StepA, StepB, StepC, StepOptA)


def console() -> Console:
    return Console(file=io.StringIO(), width=120, force_terminal=False)


def statuses(result) -> dict[str, str]:
    return {r.name: r.status for r in result.rows}


def work_of(tmp_path: Path) -> Path:
    return tmp_path / ".work" / "demo"


def go(recipe, reg, **kw):
    con = kw.pop("console", None) or console()
    res = run(recipe, reg, console=con, **kw)
    return res, con.file.getvalue()


def test_first_run_then_skip_when_unchanged(tmp_path, reg):
    r = make_recipe(tmp_path, ABC)
    res, out = go(r, reg)
    assert statuses(res) == {"a": "ran", "b": "ran", "c": "ran"}
    assert "▶ a" in out and "✓ a" in out
    work = work_of(tmp_path)
    assert res.artifacts == {"art_a": work / "art_a", "art_b": work / "art_b",
                             "art_c": work / "art_c"}
    assert (work / "art_c" / "c.txt").read_text() == "a1+b1+c1 a=True"
    assert res.row("b").metrics == {"len": 2}
    assert res.row("a").duration_s >= 0 and res.row("a").peak_rss_bytes > 10_000_000

    lock = json.loads((work / LOCK_NAME).read_text())
    assert lock["version"] == 1 and set(lock["steps"]) == set(ABC)
    e = lock["steps"]["b"]
    assert set(e) >= {"fingerprint", "params", "inputs", "tools", "output", "metrics",
                      "finished_at", "duration_s", "peak_rss_bytes"}
    assert e["params"] == {"knob": 1}
    assert e["inputs"] == {"art_a": lock["steps"]["a"]["output"]["digest"]}
    assert e["output"]["path"] == "art_b" and set(e["output"]["files"]) == {"sub/b.txt"}
    assert set(lock["steps"]["c"]["inputs"]) == {"art_a", "art_b"}  # optional input recorded

    assert [row.status for row in plan(r, reg)] == ["up to date"] * 3
    res2, out2 = go(r, reg)
    assert statuses(res2) == {"a": "up to date", "b": "up to date", "c": "up to date"}
    assert "= a up to date" in out2 and "▶" not in out2
    assert res2.artifacts == res.artifacts
    assert res2.row("c").duration_s is None


def test_param_change_reruns_that_step_and_downstream_only(tmp_path, reg):
    go(make_recipe(tmp_path, ABC), reg)
    r2 = make_recipe(tmp_path, ABC, knobs={"b": 2})
    rows = plan(r2, reg)
    assert [(x.name, x.status) for x in rows] == [("a", "up to date"), ("b", "will run"),
                                                 ("c", "will run")]
    assert rows[1].reason == "params changed: knob" and rows[1].fingerprint
    assert rows[2].fingerprint is None and "after 'b'" in rows[2].reason
    res, out = go(r2, reg)
    assert statuses(res) == {"a": "up to date", "b": "ran", "c": "ran"}
    assert res.row("b").reason == "params changed: knob"
    assert res.row("c").reason == "input changed: art_b"
    assert (work_of(tmp_path) / "art_c" / "c.txt").read_text() == "a1+b2+c1 a=True"


def test_forced_step_with_identical_output_does_not_rerun_downstream(tmp_path, reg):
    r = make_recipe(tmp_path, ABC)
    go(r, reg)
    assert [x.status for x in plan(r, reg, force=["a"])] == ["will run", "will run", "will run"]
    res, _ = go(r, reg, force=["a"])
    assert statuses(res) == {"a": "ran", "b": "up to date", "c": "up to date"}
    assert res.row("a").reason == "forced"
    # a change of a's output reruns everything downstream
    res, _ = go(make_recipe(tmp_path, ABC, knobs={"a": 5}), reg)
    assert statuses(res) == {"a": "ran", "b": "ran", "c": "ran"}


def test_until_stops_after_the_step(tmp_path, reg):
    r = make_recipe(tmp_path, ABC)
    res, _ = go(r, reg, until="b")
    assert statuses(res) == {"a": "ran", "b": "ran"}
    assert not (work_of(tmp_path) / "art_c").exists()
    assert [x.name for x in plan(r, reg, until="a")] == ["a"]
    assert [(x.name, x.status, x.reason) for x in plan(r, reg)][2] == ("c", "will run",
                                                                      "never ran")
    res, _ = go(r, reg)
    assert statuses(res) == {"a": "up to date", "b": "up to date", "c": "ran"}
    with pytest.raises(PlanError, match=r"--until 'zzz' is not a step of recipe 'demo'"):
        go(r, reg, until="zzz")
    with pytest.raises(PlanError, match=r"--force 'nope' is not a step"):
        go(r, reg, force=["nope"])


def test_missing_producer_is_a_plan_error_before_anything_runs(tmp_path, reg):
    r = make_recipe(tmp_path, ["a", "c"])
    with pytest.raises(PlanError) as ei:
        plan(r, reg)
    assert ei.value.what == "step 'c' needs artifact 'art_b', which no earlier step produces"
    assert ei.value.fix == "add 'b' before 'c' in steps"
    with pytest.raises(PlanError):
        go(r, reg)
    assert not work_of(tmp_path).exists()  # validated before anything ran

    with pytest.raises(PlanError) as ei:
        plan(make_recipe(tmp_path, ["b", "a"]), reg)
    assert ei.value.fix == "move 'a' before 'b' in steps"
    with pytest.raises(PlanError, match=r"unknown step 'x' \(fix: use one of: a, b, c, opt\)"):
        plan(make_recipe(tmp_path, ["a", "x"]), reg)
    with pytest.raises(PlanError, match="listed twice"):
        plan(make_recipe(tmp_path, ["a", "a"]), reg)
    with pytest.raises(PlanError, match="'a' which produces it comes after it"):
        plan(make_recipe(tmp_path, ["opt", "a"]), reg)


def test_optional_inputs_only_when_produced(tmp_path, reg):
    res, _ = go(make_recipe(tmp_path, ["opt"]), reg)
    assert res.row("opt").metrics == {"inputs": []}
    res, _ = go(make_recipe(tmp_path, ["a", "opt"]), reg)
    assert res.row("opt").metrics == {"inputs": ["art_a"]}  # new input -> reran
    assert res.row("opt").reason == "input changed: art_a"


def test_exception_in_step_leaves_no_output_no_lock_entry_no_temp(tmp_path, reg):
    r = make_recipe(tmp_path, ABC, behaviour={"b": "raise"})
    con = console()
    with pytest.raises(ValueError, match="b exploded"):
        run(r, reg, console=con)
    assert "✗ b  failed" in con.file.getvalue()
    work = work_of(tmp_path)
    assert (work / "art_a").is_dir() and not (work / "art_b").exists()
    assert [p.name for p in work.iterdir() if p.name.startswith(".tmp-")] == []
    assert set(Lock.for_work(work).steps) == {"a"}

    # a previously good output survives a failed rerun, but is no longer trusted
    go(make_recipe(tmp_path, ABC), reg)
    with pytest.raises(ValueError):
        go(make_recipe(tmp_path, ABC, behaviour={"b": "raise"}), reg, force=["b"])
    assert (work / "art_b" / "sub" / "b.txt").exists()
    assert "b" not in Lock.for_work(work).steps
    res, _ = go(make_recipe(tmp_path, ABC), reg)
    # b's untrusted output is replaced by the verified one the run cache kept from the good run
    assert statuses(res) == {"a": "up to date", "b": "cached", "c": "up to date"}
    res, _ = go(make_recipe(tmp_path, ABC), reg, force=["b"], run_cache=False)
    assert statuses(res) == {"a": "up to date", "b": "ran", "c": "up to date"}


def test_tampered_output_reruns(tmp_path, reg):
    r = make_recipe(tmp_path, ABC)
    go(r, reg)
    f = work_of(tmp_path) / "art_b" / "sub" / "b.txt"
    f.write_text(f.read_text() + "tampered")
    row = plan(r, reg)[1]
    assert (row.status, row.reason) == ("will run", "output changed on disk")
    res, _ = go(r, reg)
    assert statuses(res) == {"a": "up to date", "b": "ran", "c": "up to date"}
    assert "tampered" not in f.read_text()
    # extra file / missing output dir
    (work_of(tmp_path) / "art_c" / "extra").write_text("x")
    import shutil
    shutil.rmtree(work_of(tmp_path) / "art_a")
    rows = plan(r, reg, run_cache=False)
    assert [(x.status, x.reason) for x in rows] == [("will run", "output missing"),
                                                    ("will run", "after 'a' (rechecked then)"),
                                                    ("will run", "after 'b' (rechecked then)")]
    # the run cache still holds a's and c's outputs (hard links: deleting the artifact keeps them)
    assert [x.status for x in plan(r, reg)] == ["cached", "up to date", "cached"]
    res, _ = go(r, reg, run_cache=False)
    assert statuses(res) == {"a": "ran", "b": "up to date", "c": "ran"}


def test_corrupt_lock_file_reruns_everything_with_warning(tmp_path, reg):
    r = make_recipe(tmp_path, ABC)
    go(r, reg)
    lock_path = work_of(tmp_path) / LOCK_NAME
    lock_path.write_text('{"version": 1, "steps": {"a": ')
    with pytest.warns(UserWarning, match="corrupt lock file"):
        rows = plan(r, reg, run_cache=False)
    assert [x.status for x in rows] == ["will run"] * 3
    assert rows[0].reason == "lock file unreadable"
    res, out = go(r, reg, run_cache=False)
    assert "warning: ignoring corrupt lock file" in out
    assert statuses(res) == {"a": "ran", "b": "ran", "c": "ran"}
    assert list(lock_path.parent.glob(LOCK_NAME + ".corrupt-*"))  # kept for inspection
    assert set(json.loads(lock_path.read_text())["steps"]) == set(ABC)
    res, _ = go(r, reg)
    assert set(statuses(res).values()) == {"up to date"}


def test_moved_output_root_stays_up_to_date(tmp_path, reg):
    go(make_recipe(tmp_path / "one", ABC), reg)
    (tmp_path / "one").rename(tmp_path / "two")
    res, _ = go(make_recipe(tmp_path / "two", ABC), reg)
    assert set(statuses(res).values()) == {"up to date"}


def test_stale_temps_are_cleaned_at_start(tmp_path, reg):
    work = work_of(tmp_path)
    work.mkdir(parents=True)
    stale = work / ".tmp-art_a-999999999-deadbeef"
    stale.mkdir()
    (stale / "junk").write_text("x")
    go(make_recipe(tmp_path, ["a"]), reg)
    assert not stale.exists()


def test_tables_render(tmp_path, reg):
    r = make_recipe(tmp_path, ABC)
    res, _ = go(r, reg, until="b")
    con = console()
    con.print(summary_table(res))
    con.print(plan_table(plan(r, reg)))
    text = con.file.getvalue()
    for word in ("step", "status", "peak memory", "notes", "ran", "len=2", "up to date",
                 "never ran", "art_b"):
        assert word in text


def test_progress_and_log_on_a_terminal_console(tmp_path, reg):
    con = Console(file=io.StringIO(), width=100, force_terminal=True, color_system=None)
    res = run(make_recipe(tmp_path, ["a"]), reg, console=con)
    assert statuses(res) == {"a": "ran"}
    out = con.file.getvalue()
    assert "writing a" in out and "nested" in out and "wrote a" in out
