"""Steps with isolate=True run in a spawned child: errors, kills, peak memory."""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest
from rich.console import Console

_HERE = str(Path(__file__).resolve().parent)  # engine_dummy_steps must be importable by
if _HERE not in sys.path:                      # name here and in spawned children
    sys.path.insert(0, _HERE)
from engine_dummy_steps import (ALLOC_BYTES, IsoAlloc, IsoBoom, IsoCycle, IsoEnvAtImport, IsoEnvAtRun,  # noqa: E402
                                IsoKill, IsoNoop, IsoRecipeError, IsoSleep, StepA, make_recipe, make_registry)

from ovexport.engine import Lock, Step, plan, run  # noqa: E402
from ovexport.errors import OvexportError, RecipeError  # noqa: E402

pytestmark = [pytest.mark.unit, pytest.mark.timeout(120)]


def console() -> Console:
    return Console(file=io.StringIO(), width=120)


def leftovers(d: Path) -> list[str]:
    return [p.name for p in d.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def test_killed_child_leaves_nothing_trusted_and_next_run_reruns_it(tmp_path):
    reg = make_registry(StepA, IsoKill)
    r = make_recipe(tmp_path, ["a", "iso_kill"],
                    behaviour={"sentinel": str(tmp_path / "killed-once")})
    work = tmp_path / ".work" / "demo"
    con = console()
    with pytest.raises(OvexportError) as ei:
        run(r, reg, console=con)
    assert type(ei.value) is OvexportError
    assert ei.value.what == "step 'iso_kill' was killed by SIGKILL (exit code -9)"
    assert "out of memory" in ei.value.fix
    assert "✗ iso_kill  failed" in con.file.getvalue()
    assert not (work / "art_kill").exists() and leftovers(work) == []
    assert set(Lock.for_work(work).steps) == {"a"}
    assert [x.status for x in plan(r, reg)] == ["up to date", "will run"]

    res = run(r, reg, console=console())
    assert [(x.name, x.status) for x in res.rows] == [("a", "up to date"), ("iso_kill", "ran")]
    assert sorted(os.listdir(work / "art_kill")) == ["done.txt", "partial.bin"]
    assert res.row("iso_kill").metrics["pid"] != os.getpid()


def test_ovexport_error_in_child_keeps_class_message_and_fields(tmp_path):
    reg = make_registry(IsoRecipeError)
    r = make_recipe(tmp_path, ["iso_recipe_error"])
    with pytest.raises(RecipeError) as ei:
        run(r, reg, console=console())
    e = ei.value
    assert type(e) is RecipeError
    assert str(e) == ("recipe.yaml:3: compression.bits must be 4 or 8 "
                      "(fix: set compression.bits: 4)")
    assert e.problems == ["recipe.yaml:3: compression.bits must be 4 or 8"]
    assert e.fix == "set compression.bits: 4"
    assert "engine_dummy_steps.py" in e.child_traceback
    work = tmp_path / ".work" / "demo"
    assert not (work / "art_err").exists() and leftovers(work) == []
    assert Lock.for_work(work).steps == {}


def test_other_exception_in_child_is_runtime_error_with_traceback(tmp_path):
    reg = make_registry(IsoBoom)
    with pytest.raises(RuntimeError) as ei:
        run(make_recipe(tmp_path, ["iso_boom"]), reg, console=console())
    msg = str(ei.value)
    assert msg.startswith("step 'iso_boom' failed in its subprocess:")
    assert "ValueError: kaboom in child" in msg and "Traceback" in msg


def _fork_server_pid() -> int | None:
    import psutil
    for child in psutil.Process().children():
        if "forkserver" in " ".join(child.cmdline()):
            return child.pid
    return None


def test_peak_rss_of_isolated_child(tmp_path):
    # a big parent must not inflate the child's figure (ru_maxrss is inherited across spawn)
    ballast = b"\x02" * (300 * 1024 * 1024)
    reg = make_registry(IsoNoop, IsoAlloc)
    res = run(make_recipe(tmp_path, ["iso_noop", "iso_alloc"]), reg, console=console())
    del ballast
    row = res.row("iso_alloc")
    # what a step that allocates nothing reports (the interpreter, and whatever the fork server preloaded)
    base = res.row("iso_noop").peak_rss_bytes
    assert row.status == "ran"
    # forked from the fork server (or spawned): another process, not a child of a fork of this one
    assert row.metrics["pid"] != os.getpid() and row.metrics["parent_pid"] in (os.getpid(), _fork_server_pid())
    assert ALLOC_BYTES <= row.peak_rss_bytes - base + 50 * 1024 * 1024
    assert row.peak_rss_bytes - base < ALLOC_BYTES + 150 * 1024 * 1024
    assert (tmp_path / ".work" / "demo" / "art_alloc" / "size.txt").read_text() == str(ALLOC_BYTES)


def test_isolated_step_class_must_be_importable(tmp_path):
    class Local(Step):
        name = "local"
        produces = "art_local"

        def params(self, recipe):
            return {}

        def run(self, ctx):
            return None

    reg = make_registry(Local)
    with pytest.raises(TypeError, match="cannot be imported by a subprocess"):
        run(make_recipe(tmp_path, ["local"]), reg, console=console())
    assert leftovers(tmp_path / ".work" / "demo") == []


_CTRL_C_SCRIPT = """
import io, signal, sys
# a terminal delivers Ctrl-C as KeyboardInterrupt; a shell's background job starts with SIGINT ignored, and
# Python then installs no handler: restore it, so the test does not depend on how pytest was launched
signal.signal(signal.SIGINT, signal.default_int_handler)
sys.path.insert(0, {here!r})
from rich.console import Console
from engine_dummy_steps import IsoSleep, make_recipe, make_registry
from ovexport.engine import run
if __name__ == "__main__":          # spawned children re-import this file
    con = Console(file=sys.stdout, width=120)
    try:
        run(make_recipe({root!r}, ["iso_sleep"]), make_registry(IsoSleep), console=con)
    except KeyboardInterrupt:
        sys.stdout.flush()
        sys.exit(130)
"""


def test_ctrl_c_in_parent_stops_child_and_removes_temp(tmp_path):
    """Ctrl-C (SIGINT) reaches a real `run` in its own process, as it does from a terminal."""
    import signal
    import subprocess
    import time

    import psutil

    work = tmp_path / ".work" / "demo"
    script = tmp_path / "ctrl_c.py"
    script.write_text(_CTRL_C_SCRIPT.format(here=_HERE, root=str(tmp_path)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = None
    deadline = time.monotonic() + 60
    while pid is None and time.monotonic() < deadline and proc.poll() is None:
        for f in work.glob(".tmp-art_sleep-*/started") if work.exists() else ():
            if f.read_text():
                pid = int(f.read_text())
        time.sleep(0.02)
    assert pid is not None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "✗ iso_sleep  interrupted" in out
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert leftovers(work) == [] and not (work / "art_sleep").exists()


def test_fork_server_restarts_when_the_environment_changes(tmp_path, monkeypatch):
    """A preloaded module that reads the environment at import (huggingface_hub: HF_HUB_OFFLINE) sees the
    runner's environment of the run, not the one the fork server started with."""
    reg = make_registry(IsoEnvAtImport)
    r = make_recipe(tmp_path, ["iso_env_at_import"])
    # the fork server imports its preloads before it takes the runner's sys.path: they are found through
    # PYTHONPATH (as an installed package is through site-packages)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([_HERE, *filter(None, [os.environ.get("PYTHONPATH")])]))
    seen = []
    for value in ("first", "second"):
        monkeypatch.setenv("ENV_AT_IMPORT_TEST", value)
        res = run(r, reg, console=console(), force=["iso_env_at_import"])
        seen.append(res.row("iso_env_at_import").metrics)
    assert seen == [{"value": "first", "preloaded": True}, {"value": "second", "preloaded": True}]


def test_own_variables_reach_the_step_without_restarting_the_fork_server(tmp_path, monkeypatch):
    """ovexport reads its own variables when it uses them, so a changed OVEXPORT_* variable reaches the step
    through the environment the child takes, and the fork server (~10 s of imports to restart) stays."""
    reg = make_registry(IsoEnvAtRun)
    r = make_recipe(tmp_path, ["iso_env_at_run"])
    seen = []
    for value in ("first", "second"):
        monkeypatch.setenv("OVEXPORT_TEST_AT_RUN", value)
        seen.append(run(r, reg, console=console(), force=["iso_env_at_run"]).row("iso_env_at_run").metrics)
    assert [m["value"] for m in seen] == ["first", "second"]
    assert seen[0]["server"] == seen[1]["server"] != os.getpid()


def test_a_step_child_freezes_what_it_inherited_and_still_frees_its_own_cycles(tmp_path):
    """The child moves the server's imports to the permanent generation (release_memory's full collections then
    skip them) and a reference cycle the step makes is still collected."""
    res = run(make_recipe(tmp_path, ["iso_cycle"]), make_registry(IsoCycle), console=console())
    metrics = res.row("iso_cycle").metrics
    assert metrics["freed"] is True
    assert metrics["frozen"] > 1000    # at least the interpreter's and the engine's own objects
