"""Which checks a recipe leaves ungated, and the status a check gets from that.

A check is *not gated* when every threshold of its ``validation.thresholds.<check>`` block is null: its
metrics are measured and reported, but nothing was compared, so it must never read as "passed". Gates a
check always applies (the LLM's reset gate) still fail it; they do not make it "passed" on their own.
"""
from __future__ import annotations

from typing import Any

from .base import FAILED, NOT_GATED, CheckResult


def ungated_checks(spec: Any) -> list[str]:
    """Names of the checks whose recipe thresholds are all null (``spec``: a recipe ``ValidationSpec``)."""
    out = []
    for name in type(spec.thresholds).model_fields:
        block = getattr(spec.thresholds, name)
        if all(v is None for v in block.model_dump().values()):
            out.append(name)
    return out


def apply_gating(result: CheckResult, spec: Any) -> CheckResult:
    """A check the recipe leaves ungated is "not gated" unless one of its own gates failed."""
    if result.status != FAILED and result.name in ungated_checks(spec):
        result.set_status(NOT_GATED)
    return result


def ungated_warnings(spec: Any, where: str = "") -> list[str]:
    """One line per ungated check, for ``ovexport check``."""
    prefix = f"{where}: " if where else ""
    return [f"{prefix}validation.thresholds.{name}: every threshold is null, so the {name} check is measured "
            f"but not gated (it can never fail); set at least one threshold to gate it"
            for name in ungated_checks(spec)]
