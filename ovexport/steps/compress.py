"""compress: NNCF weight compression of each part, as the recipe's per-part policy says.

A part whose policy is ``null`` is passed through unchanged (hard-linked). The output holds all
three final IRs plus ``compression.json``: per part, the policy, the bit-width distribution of its IR
(NNCF's table recomputed from the IR: all weights and ratio-defining weights), NNCF's own table as it
logged it, and, for data-aware policies, what calibration data was used.
"""
from __future__ import annotations

import json

from ovexport.bundle.layout import COMPRESSION
from ovexport.engine.code_digest import link_or_copy, versions
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.exporter.compress import compress_model, nncf_table
from ovexport.exporter.convert import save_ir
from ovexport.exporter.inspect import compression_report
from ovexport.parts import PARTS, part as part_named
from ovexport.util.memory import release_memory

from .common import RunsFamilyCode


def compress_part(recipe, part: str, policy, inputs: dict, log=lambda msg: None):
    """Read ``part``'s IR from ``inputs``, compress it with ``policy`` (building the calibration set when the
    policy is data-aware) and return ``(model, report)``; ``report`` is the part's compression.json entry."""
    import openvino as ov

    p = part_named(part)
    model = ov.Core().read_model(inputs[p.source_artifact] / p.ir_file)
    dataset, calibration = None, None
    if policy.data_aware:
        from ovexport.calibration import calibration_dataset
        dataset = calibration_dataset(recipe, part, inputs, log)
        items = dataset.get_length()
        calibration = {"source": recipe.calibration_source.uri, "num_samples": recipe.calibration.num_samples,
                       "items": items, "subset_size": min(recipe.calibration.subset_size, items),
                       "options": policy.data_aware_options()}
    log(f"compressing {part}: {policy.mode}")
    messages: list[str] = []
    # NNCF draws its own progress bar: no live display of ours while it runs
    model = compress_model(model, policy, dataset,
                           subset_size=recipe.calibration.subset_size if dataset is not None else None,
                           log_messages=messages)
    report = {"policy": policy.model_dump(mode="json"), **compression_report(model, policy),
              "nncf_table": nncf_table(messages)}
    if calibration is not None:
        report["calibration"] = calibration
    return model, report


@register_step
class Compress(RunsFamilyCode, Step):
    name = "compress"
    consumes = tuple(p.source_artifact for p in PARTS)
    optional = ("checkpoint",)
    produces = "compressed_ir"
    preload = ("torch", "openvino")
    code_roles = ("runtime",)   # data-aware calibration prompts and slices through the runtime adapter

    def params(self, recipe) -> dict:
        p = {"compression": recipe.compression.model_dump(mode="json")}
        if recipe.calibration is not None:
            p["calibration"] = recipe.calibration.model_dump(mode="json")
        return p

    def tool_versions(self) -> dict[str, str]:
        return {"code": self.code(), **versions("nncf", "openvino")}

    def run(self, ctx: StepContext) -> dict:
        import openvino as ov

        core = ov.Core()
        report: dict[str, dict] = {}
        for part in PARTS:
            policy = ctx.recipe.compression.parts().get(part.key)
            src = ctx.inputs[part.source_artifact]
            if policy is None:
                for f in part.files:
                    link_or_copy(src / f, ctx.out / f)
                report[part.key] = {"policy": None, **compression_report(core.read_model(src / part.ir_file), None)}
            else:
                model, report[part.key] = compress_part(ctx.recipe, part.key, policy, ctx.inputs, ctx.log)
                save_ir(model, ctx.out, part.ir_file)
                del model
                release_memory()   # the next part starts from the memory this one used, not on top of it
        (ctx.out / COMPRESSION).write_text(json.dumps(report, indent=2))
        return {part: {k: v["layers"] for k, v in r["weights"].items() if v["layers"]} for part, r in report.items()}
