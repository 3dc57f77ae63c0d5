"""compress: NNCF weight compression of each part, as the recipe's per-part policy says.

A part whose policy is ``null`` is passed through unchanged (hard-linked). A part held in several IRs
(``ModelFamily.ir_layout``) has each of them compressed with its policy. The output holds every final IR plus
``compression.json``: per part, its IR files, the policy, the bit-width distribution of its IR(s)
(NNCF's table recomputed from the IR: all weights and ratio-defining weights), NNCF's own table as it
logged it, and, for data-aware policies, what calibration data was used.
"""
from __future__ import annotations

import json
from pathlib import Path

from ovexport.bundle.layout import COMPRESSION
from ovexport.engine.code_digest import link_or_copy, versions
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.exporter.compress import compress_model, nncf_table
from ovexport.exporter.convert import save_ir
from ovexport.exporter.inspect import compression_report, merged_report
from ovexport.bundle.layout import ir_files
from ovexport.parts import PARTS, ir_files_of, part as part_named
from ovexport.util.memory import FilePageTrimmer, release_memory

from .family_code import RunsFamilyCode


def part_irs(inputs: dict, part: str) -> tuple[str, ...]:
    """The IR files (.xml) of ``part`` in its convert step's artifact: one, or several when the family splits the
    part (``ModelFamily.ir_layout``). The family's own order when the checkpoint is at hand."""
    p = part_named(part)
    if "checkpoint" in inputs:
        from ovexport.models.registry import family_for
        return ir_files_of(family_for(inputs["checkpoint"]), part)
    found = sorted(f.name for f in Path(inputs[p.source_artifact]).glob("*.xml"))
    return tuple(found) or (p.ir_file,)


def compress_part(recipe, part: str, policy, inputs: dict, log=lambda msg: None, ir: str | None = None):
    """Read ``part``'s IR ``ir`` (default: its first) from ``inputs``, compress it with ``policy`` (building the
    calibration set when the policy is data-aware) and return ``(model, report)``; ``report`` is the IR's
    compression.json entry."""
    import openvino as ov

    p = part_named(part)
    ir = ir or part_irs(inputs, part)[0]
    xml = Path(inputs[p.source_artifact]) / ir
    model = ov.Core().read_model(xml)
    dataset, calibration = None, None
    if policy.data_aware:
        from ovexport.calibration import calibration_dataset
        dataset = calibration_dataset(recipe, part, inputs, log, ir=ir)
        items = dataset.get_length()
        calibration = {"source": recipe.calibration_source.uri, "num_samples": recipe.calibration.num_samples,
                       "items": items, "subset_size": min(recipe.calibration.subset_size, items),
                       "options": policy.data_aware_options()}
    log(f"compressing {part} ({ir}): {policy.mode}")
    messages: list[str] = []
    # NNCF draws its own progress bar: no live display of ours while it runs. It reads every weight of the
    # mapped IR: the pages it has read leave the resident set as it goes (the full-size LLM's 5.1 GB of fp16
    # weights were 5.35 GB of the step's 8.8 GB peak otherwise; util/memory.py)
    with FilePageTrimmer([xml.parent / ir_files(ir)[1]]):
        model = compress_model(model, policy, dataset,
                               subset_size=recipe.calibration.subset_size if dataset is not None else None,
                               log_messages=messages)
    report = {"policy": policy.model_dump(mode="json"), **compression_report(model, policy),
              "nncf_table": nncf_table(messages)}
    if calibration is not None:
        report["calibration"] = calibration
    return model, report


def compress_part_irs(recipe, part: str, policy, inputs: dict, log=lambda msg: None) -> tuple[dict, dict]:
    """Every IR of ``part`` compressed with ``policy``: ``({xml: model}, report)``, the report of a part held in
    several IRs being their counts added up (``merged_report``, each IR's own under ``irs``)."""
    models, reports = {}, {}
    for ir in part_irs(inputs, part):
        models[ir], reports[ir] = compress_part(recipe, part, policy, inputs, log, ir)
    return models, {**merged_report(reports), "files": list(reports)}


@register_step
class Compress(RunsFamilyCode, Step):
    name = "compress"
    consumes = tuple(p.source_artifact for p in PARTS)
    optional = ("checkpoint",)
    produces = "compressed_ir"
    preload = ("torch", "openvino")
    code_roles = ("runtime",)   # data-aware calibration prompts and images through the runtime adapter

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
                reports = {}
                for ir in part_irs(ctx.inputs, part.key):
                    for f in ir_files(ir):
                        link_or_copy(src / f, ctx.out / f)
                    reports[ir] = {"policy": None, **compression_report(core.read_model(src / ir), None)}
                report[part.key] = {**merged_report(reports), "files": list(reports)}
            else:
                models, report[part.key] = compress_part_irs(ctx.recipe, part.key, policy, ctx.inputs, ctx.log)
                for ir, model in models.items():
                    save_ir(model, ctx.out, ir)
                del models, model
            release_memory()   # the next part starts from the memory this one used, not on top of it
        (ctx.out / COMPRESSION).write_text(json.dumps(report, indent=2))
        return {part: {k: v["layers"] for k, v in r["weights"].items() if v["layers"]} for part, r in report.items()}
