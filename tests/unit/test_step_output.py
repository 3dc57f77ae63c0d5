"""Issue 10, what a person reads: tables readable off a terminal, known third-party warnings in the step's
log file (not on the screen), and a live sub-task line for long steps."""
from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.progress import Progress

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from engine_dummy_steps import make_recipe, make_registry  # noqa: E402
from engine_warning_steps import JIT, WarnInProcess, WarnIsolated  # noqa: E402

from ovexport.engine import run, summary_table  # noqa: E402
from ovexport.engine.step import ProgressTask  # noqa: E402
from ovexport.engine.step_log import known_warnings_to_log, step_log_path  # noqa: E402
from ovexport.util.console import LOG_WIDTH, ReadableConsole  # noqa: E402

pytestmark = pytest.mark.unit


def _rows():
    notes = {"passed": True, "duration_s": 512.3, "text_embeddings.max_abs_diff": 0.0, "llm.min_cosine": 0.98917}
    return SimpleNamespace(rows=[
        SimpleNamespace(name=n, status="ran", duration_s=123.4, peak_rss_bytes=6.7e9, metrics=notes,
                        reason="never ran")
        for n in ("download", "convert_text_embeddings", "convert_llm", "validate", "package")])


def test_summary_stays_one_line_per_step_when_stdout_is_not_a_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a narrow CI runner
    out = io.StringIO()
    con = ReadableConsole(file=out)
    assert not con.is_terminal and con.width == LOG_WIDTH
    con.print(summary_table(_rows()))
    lines = [ln for ln in out.getvalue().splitlines() if any(ch.isalnum() for ch in ln)]
    body = [ln for ln in lines if "ran" in ln]
    assert len(body) == 5, out.getvalue()          # each step's row on one line: nothing wrapped
    for ln in body:
        assert "123.4 s" in ln or "2 min 03 s" in ln
        assert "llm.min_cosine=0.9892" in ln
    # rich's own console squeezes the same table into 40 columns: cells wrapped or dropped (what CI logs showed)
    narrow = io.StringIO()
    Console(file=narrow).print(summary_table(_rows()))
    assert "llm.min_cosine=0.9892" not in narrow.getvalue()


def test_a_terminal_keeps_its_own_width():
    con = ReadableConsole(file=io.StringIO(), force_terminal=True, width=100)
    assert con.width == 100


def test_known_warnings_go_to_the_log_and_others_to_the_screen(tmp_path):
    log = tmp_path / "logs" / "convert.log"
    before = (warnings.showwarning, list(warnings.filters))
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        with known_warnings_to_log(log):
            warnings.warn(JIT, FutureWarning)
            warnings.warn("something else", UserWarning)
        warnings.warn(JIT, FutureWarning)   # outside the block: shown again
    assert [str(w.message) for w in shown] == ["something else", JIT]
    assert log.read_text().count("torch.jit.trace") == 1 and "FutureWarning" in log.read_text()
    assert (warnings.showwarning, list(warnings.filters)) == before   # restored


@pytest.mark.parametrize("step", [WarnInProcess, WarnIsolated], ids=["in-process", "isolated"])
def test_a_steps_third_party_warnings_end_up_in_its_log_file_not_on_stderr(tmp_path, capfd, step):
    reg = make_registry(step)
    con = Console(file=io.StringIO(), width=120)
    with warnings.catch_warnings(record=True) as shown:   # in-process, what would be shown is recorded here
        warnings.simplefilter("always")
        res = run(make_recipe(tmp_path, [step.name]), reg, console=con)
    assert res.row(step.name).status == "ran"
    err = capfd.readouterr().err + "".join(f"{w.category.__name__}: {w.message}" for w in shown)
    assert "torch.jit" not in err and "TracerWarning" not in err
    if not step.isolate:
        # an unknown warning still reaches the screen (an isolated step's child writes to the stderr its fork
        # server started with, which capfd may not see once another test started the server)
        assert "something the user must see" in err
    log = step_log_path(tmp_path / ".work" / "demo", step.name).read_text()
    assert "torch.jit.trace` is deprecated" in log and "TracerWarning" in log
    assert "did the work" in log                           # ctx.log lines are in the log too
    assert "something the user must see" not in log


def test_progress_task_shows_the_current_subtask():
    prog = Progress(console=Console(file=io.StringIO(), force_terminal=True))
    task = prog.add_task("validating", total=4)
    p = ProgressTask(prog, task, "validating")
    p.describe("llm: compiling openvino_language_model.xml")
    p()
    t = prog.tasks[0]
    assert t.description == "validating: llm: compiling openvino_language_model.xml" and t.completed == 1
    ProgressTask(None, None, "x").describe("off a terminal: nothing")   # no display, no error


def test_validation_reports_each_check_and_subtask_to_the_progress(monkeypatch, tmp_path):
    """run_validation tells the step's progress which check runs and what it does (fake checks, no OpenVINO)."""
    from ovexport.recipe.schema import ValidationSpec
    from ovexport.validators import run_checks
    from ovexport.validators.base import CheckResult
    from ovexport.validators.context import ValidationContext

    seen: list[str] = []

    class Spy:
        def describe(self, text):
            seen.append(text)

        def __call__(self, n=1):
            seen.append("advance")

    def fake(name):
        def run_check(ctx):
            ctx.subtask("PyTorch reference (llm)")
            return CheckResult.build(name, "p", {"x": 0.0}, [])
        return ("p", run_check)

    monkeypatch.setattr(run_checks, "CHECKS", {"a": fake("a"), "b": fake("b")})
    monkeypatch.setattr(ValidationContext, "check_irs", lambda self: None)
    monkeypatch.setattr("ovexport.validators.context.family_for", lambda ckpt: None)
    rep = run_checks.run_validation(tmp_path, tmp_path, ValidationSpec(), Console(file=io.StringIO()), progress=Spy())
    assert seen == ["a: starting", "a: PyTorch reference (llm)", "advance",
                    "b: starting", "b: PyTorch reference (llm)", "advance"]
    assert rep["not_gated"] == ["a", "b"]
