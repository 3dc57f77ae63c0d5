"""validate: numerical parity of the final IRs (after compression) against the PyTorch reference.

Writes ``validation.json`` (its ``status``: passed, not_gated or failed; every metric, gate and per-case number)
and fails with one ``ValidationFailed`` line when a gate of the recipe's ``validation:`` block fails. The report of a failed
run is also kept as ``<work>/validation.failed.json``, since a failed step's output directory is discarded.
"""
from __future__ import annotations

from ovexport.bundle.layout import VALIDATION
from ovexport.engine.code_digest import versions
from ovexport.engine.step import Step, StepContext, register_step

from .family_code import RunsFamilyCode

FAILED_REPORT = "validation.failed.json"


@register_step
class Validate(RunsFamilyCode, Step):
    name = "validate"
    consumes = ("checkpoint", "compressed_ir")
    produces = "validation"
    preload = ("torch", "openvino")
    code_roles = ("reference", "runtime")

    def params(self, recipe) -> dict:
        return recipe.validation.model_dump(mode="json")

    def tool_versions(self) -> dict[str, str]:
        return {"code": self.code(), **versions("openvino", "torch", "timm")}

    def run(self, ctx: StepContext) -> dict:
        from ovexport.evaluation.reference_cache import ReferenceCache, default_root
        from ovexport.models.registry import family_for
        from ovexport.validators.run_checks import checks_of, raise_if_failed, run_validation, write_report
        from ovexport.validators.status import FAILED

        # PyTorch outputs are shared by every variant of the checkpoint (the next recipe, the next sweep point)
        cache = ReferenceCache(default_root(ctx.recipe.output.root))
        # one spinner for the whole step (7-10 min at full size): elapsed time, check n/4 and its sub-task
        total = len(checks_of(family_for(ctx.inputs["checkpoint"])))
        with ctx.progress("validating", total=total) as progress:
            report = run_validation(ctx.inputs["checkpoint"], ctx.inputs["compressed_ir"], ctx.recipe.validation,
                                    ctx.console, progress=progress, reference_cache=cache)
        path = write_report(report, ctx.out / VALIDATION)
        failed_copy = ctx.work / FAILED_REPORT
        if report["status"] == FAILED:
            write_report(report, failed_copy)
            raise_if_failed(report, failed_copy)
        if failed_copy.is_file():
            failed_copy.unlink()  # an earlier failure's report no longer applies
        ctx.log(f"wrote {path.name} (PyTorch outputs: {cache.hits} checks from the reference cache, "
                f"{cache.misses} computed)")
        return {**summary(report), "reference_cache_hits": cache.hits}


def summary(report: dict) -> dict:
    """The lock's metrics: status (passed, not_gated, failed), and each gated or headline number by
    ``check.metric``."""
    out: dict = {"status": report["status"]}
    if report.get("not_gated"):
        out["not_gated"] = ", ".join(report["not_gated"])
    out["duration_s"] = report.get("duration_s")
    for c in report["checks"]:
        for metric, value in c["metrics"].items():
            out[f"{c['name']}.{metric}"] = value
    return out
