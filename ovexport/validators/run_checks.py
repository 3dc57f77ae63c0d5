"""Run the parity checks, print them as a table, and turn failures into one ``ValidationFailed`` line."""
from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ovexport.engine.peak_rss import vm_hwm
from ovexport.errors import InputError, OvexportError, ValidationFailed
from ovexport.parts import PART_KEYS

from . import end_to_end, genai_end_to_end, image_encoder, llm, text_embeddings
from .base import FAILED, NOT_GATED, CheckResult, Gate, fmt, json_safe
from .context import ValidationContext
from .gating import apply_gating
from .status import PASSED, aggregate, phrase, state_of

# name -> (part, run(ctx) -> CheckResult), in the order they run: one check per part of the parts table
# (``ovexport.parts``; a family's bundle is checked on the parts it has), then the whole bundle end to end
CHECKS: dict[str, tuple[str, Callable[[ValidationContext], CheckResult]]] = {
    text_embeddings.NAME: (text_embeddings.PART, text_embeddings.run),
    image_encoder.NAME: (image_encoder.PART, image_encoder.run),
    llm.NAME: (llm.PART, llm.run),
    end_to_end.NAME: (end_to_end.PART, end_to_end.run),
}
_unchecked = set(PART_KEYS) - {part for part, _ in CHECKS.values()}
assert not _unchecked, f"parts of the parts table without a check: {_unchecked}"
# run only when named (``ovexport validate BUNDLE --runtime genai``): they need a bundle's files, not only its IRs
OPTIONAL_CHECKS: dict[str, tuple[str, Callable[[ValidationContext], CheckResult]]] = {
    genai_end_to_end.NAME: (genai_end_to_end.PART, genai_end_to_end.run),
}


def checks_of(family) -> list[str]:
    """The checks a bundle of ``family`` gets: those of the parts it has, and the bundle-level ones."""
    return [name for name, (part, _) in CHECKS.items() if part not in PART_KEYS or part in family.parts]


def _select(checks: Sequence[str] | None) -> list[str]:
    if checks is None:
        return list(CHECKS)
    known = {**CHECKS, **OPTIONAL_CHECKS}
    unknown = [c for c in checks if c not in known]
    if unknown:
        raise InputError(f"unknown validation check {unknown[0]!r}", fix=f"use some of: {', '.join(known)}")
    return [c for c in known if c in checks]  # always in the canonical order


def run_validation(ckpt: Path, ir_dir: Path, spec: Any, console: Console | None = None,
                   checks: Sequence[str] | None = None, reference_dtype: Any = None, progress: Any = None,
                   reference_cache: Any = None) -> dict:
    """Run the checks (all, or the named ones) of the IRs in ``ir_dir`` against the PyTorch reference of
    ``ckpt`` with the thresholds of ``spec`` (a recipe ``ValidationSpec``); print a table and return the
    JSON-safe report. With ``reference_cache`` (an ``evaluation.ReferenceCache``) each check's PyTorch outputs
    are read from it when another variant of the same checkpoint computed them already. Returns ``{"status",
"passed", "not_gated", "ov_config", "checks": [...], "duration_s", ...}``: ``status`` is "passed", "not_gated"
(``not_gated`` names the checks with no gate, or not run) or "failed" (``status.aggregate``).

    A check that raises (e.g. an IR that does not accept the expected inputs) is reported as failed with the
    error; problems the user must fix first (missing IR files, unknown check) raise ``OvexportError``.
    ``progress``: a ``StepContext.progress`` task (``describe(text)``, ``advance()``) that shows the current
    check and its sub-task, or None.
    """
    console = console if console is not None else Console()
    t0 = time.monotonic()
    ctx = ValidationContext(Path(ckpt), Path(ir_dir), spec, console, reference_dtype=reference_dtype,
                            progress=progress, reference_cache=reference_cache)
    ctx.check_irs()
    expected = checks_of(ctx.family)
    names = [n for n in _select(checks) if n in expected or n in OPTIONAL_CHECKS]
    results: list[CheckResult] = []
    peaks: dict[str, int] = {}
    try:
        for name in names:
            part, fn = {**CHECKS, **OPTIONAL_CHECKS}[name]
            ctx.log(f"validating {name} ({part}) on {spec.device}")
            ctx.check_name = name
            ctx.subtask("starting")
            t = time.monotonic()
            try:
                res = fn(ctx)
            except OvexportError:
                raise
            except Exception as e:  # noqa: BLE001 - a broken IR must give a failed check, not a crash
                msg = " ".join(f"{type(e).__name__}: {e}".split())
                res = CheckResult(name=name, part=part, metrics={}, gates=[], passed=False, status=FAILED,
                                  details={"error": msg[:2000], "traceback": traceback.format_exc()[-4000:]})
            res.duration_s = round(time.monotonic() - t, 3)
            peak = vm_hwm()
            if peak is not None:
                peaks[name] = peak
            results.append(apply_gating(res, spec))
            if progress is not None:
                progress()
    finally:
        ctx.close()
    report = {
        # status, passed (only when every check ran and was gated), not_gated (checks ungated or not run)
        **aggregate((r.to_dict() for r in results), expected=expected),
        "ov_config": dict(spec.ov_config()),
        "device": spec.device,
        "checkpoint": str(Path(ckpt).resolve()),
        "ir_dir": str(Path(ir_dir).resolve()),
        "spec": spec.model_dump(mode="json"),
        "checks": [r.to_dict() for r in results],
        "duration_s": round(time.monotonic() - t0, 3),
        # the process's peak RSS so far after each check (VmHWM, Linux): the first check to reach the last
        # value is the one that set the step's peak
        "peak_rss_after_check": peaks,
    }
    report["failures"] = failure_lines(report)
    print_report(report, console)
    return json_safe(report)


def _gates(check: dict) -> list[Gate]:
    return [Gate(**g) if isinstance(g, dict) else g for g in check.get("gates", [])]


def failure_lines(report: dict) -> list[str]:
    """One short phrase per failed gate or errored check, e.g. ``llm.max_abs_diff 0.31 > 0.001``."""
    out: list[str] = []
    for c in report.get("checks", []):
        if c.get("passed") is not False:  # passed, or not gated
            continue
        err = (c.get("details") or {}).get("error")
        if err:
            out.append(f"{c['name']} raised {err[:300]}")
        failed = [g for g in _gates(c) if not g.passed]
        out.extend(g.describe(c["name"]) for g in failed)
        if not err and not failed:
            out.append(f"{c['name']} failed")
    return out


def print_report(report: dict, console: Console) -> None:
    table = Table(title="validation (IR vs PyTorch)", title_justify="left")
    for col, kw in (("check", {}), ("metric", {}), ("value", {"justify": "right"}),
                    ("threshold", {"justify": "right"}), ("result", {})):
        table.add_column(col, **kw)
    for c in report["checks"]:
        gates = {g.metric: g for g in _gates(c)}
        first = True
        err = (c.get("details") or {}).get("error")
        if err:
            table.add_row(c["name"], "error", err[:80], "", "[red]FAIL[/red]")
            first = False
        for metric, value in c["metrics"].items():
            g = gates.get(metric)
            if g is None:
                thr, res = "-", "[dim]measured[/dim]"
            else:
                thr = ("<= " if g.kind == "max" else ">= ") + fmt(g.threshold)
                res = "[green]pass[/green]" if g.passed else "[bold red]FAIL[/bold red]"
            table.add_row(c["name"] if first else "", metric, fmt(value), thr, res)
            first = False
        if c.get("status") == NOT_GATED:
            table.add_row("" if not first else c["name"], "[bold yellow]not gated[/bold yellow]", "", "",
                          "[yellow]no threshold[/yellow]")
    console.print(table)
    console.print(f"{verdict(report)} in {report['duration_s']:.1f}s "
                  f"({', '.join(f'{k}={v}' for k, v in report['ov_config'].items())}, {report['device']})")


def verdict(report: dict, markup: bool = True) -> str:
    """``validation passed`` / ``validation not gated: end_to_end (...)`` / ``validation failed`` (rich markup,
    or plain text)."""
    status = state_of(report)["status"]
    style = {PASSED: "green", FAILED: "bold red"}.get(status, "bold yellow")
    text = "validation " + phrase(report)
    return f"[{style}]{escape(text)}[/{style}]" if markup else text


def write_report(report: dict, path: Path) -> Path:
    """Write the report as JSON (atomically)."""
    from ovexport.engine.atomic import atomic_write_text

    path = Path(path)
    atomic_write_text(path, json.dumps(json_safe(report), indent=2, ensure_ascii=False) + "\n")
    return path


def raise_if_failed(report: dict, report_path: Path | str | None = None) -> None:
    """Raise ``ValidationFailed`` naming every failed check and its numbers, on one line (a report that is not
    gated did not fail: the caller says so)."""
    if state_of(report)["status"] != FAILED:
        return
    lines = report.get("failures") or failure_lines(report) or ["a check failed"]
    where = str(report_path) if report_path is not None else "validation.json"
    raise ValidationFailed(
        "validation failed: " + "; ".join(lines),
        fix=f"look at {where} for the per-case numbers; only if the difference is expected (fp16/compressed "
            "weights, another device) adjust the thresholds in the recipe's validation: block, otherwise "
            "the export is wrong",
    )
