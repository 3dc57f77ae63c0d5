"""Numerical parity checks of exported IRs against the PyTorch reference (see docs/validation.md).

``run_validation(ckpt, ir_dir, spec)`` runs every check and returns a JSON-safe report;
``raise_if_failed(report)`` turns failed gates into one ``ValidationFailed`` line;
``revalidate_bundle(bundle)`` re-hashes a bundle's files and re-runs the checks.
"""
from __future__ import annotations

from typing import Any

__all__ = ["CHECKS", "CheckResult", "Gate", "ValidationContext", "raise_if_failed", "revalidate_bundle",
           "run_validation", "write_report"]


def __getattr__(name: str) -> Any:  # lazy: importing the package stays cheap
    if name in ("run_validation", "raise_if_failed", "write_report", "CHECKS"):
        from . import run_checks
        return getattr(run_checks, name)
    if name in ("CheckResult", "Gate"):
        from . import base
        return getattr(base, name)
    if name == "ValidationContext":
        from .context import ValidationContext
        return ValidationContext
    if name == "revalidate_bundle":
        from .bundle_check import revalidate_bundle
        return revalidate_bundle
    raise AttributeError(f"module 'ovexport.validators' has no attribute {name!r}")
