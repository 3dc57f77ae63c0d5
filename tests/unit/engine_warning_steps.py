"""Dummy steps that raise third-party-looking warnings (not collected: no ``test_`` prefix); importable by
name from ``tests/unit`` so that the isolated one can run in a subprocess."""
from __future__ import annotations

import warnings
from typing import Any

from ovexport.engine import Step, StepContext

JIT = "`torch.jit.trace` is deprecated. Please switch to `torch.compile` or `torch.export`."


class TracerWarning(Warning):
    """Same name as torch.jit.TracerWarning (the filter matches warning categories by name)."""


def _warn(ctx: StepContext) -> dict:
    warnings.warn(JIT, FutureWarning)
    warnings.warn("Converting a tensor to a Python boolean might cause the trace to be incorrect.", TracerWarning)
    warnings.warn("ovexport-test: something the user must see", UserWarning)
    ctx.log("did the work")
    (ctx.out / "x.txt").write_text("x")
    return {}


class WarnInProcess(Step):
    name = "warn_here"
    produces = "art_w"
    isolate = False

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> dict:
        return _warn(ctx)


class WarnIsolated(Step):
    name = "warn_child"
    produces = "art_wc"
    isolate = True

    def params(self, recipe: Any) -> dict:
        return {}

    def run(self, ctx: StepContext) -> dict:
        return _warn(ctx)
