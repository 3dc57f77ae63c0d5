"""compress: NNCF weight compression of each part, as the recipe's per-part policy says.

A part whose policy is ``null`` is passed through unchanged (hard-linked). The output holds all
three final IRs plus ``compression.json`` (policies and the bit-width distribution of each IR).
"""
from __future__ import annotations

import json

from ovexport.bundle.layout import COMPRESSION, IR_OF_PART, PART_OF_RECIPE_KEY, ir_files
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.exporter.compress import compress_model
from ovexport.exporter.convert import save_ir
from ovexport.exporter.inspect import bit_distribution, weight_bit_stats

from .common import code_digest, link_or_copy, versions

# which artifact holds each part before compression
SOURCE_ARTIFACT = {"language_model": "llm_stateful_ir", "image_encoder": "image_encoder_ir",
                   "text_embeddings": "text_embeddings_ir"}


@register_step
class Compress(Step):
    name = "compress"
    consumes = ("text_embeddings_ir", "llm_stateful_ir", "image_encoder_ir")
    optional = ("checkpoint",)
    produces = "compressed_ir"

    def params(self, recipe) -> dict:
        p = {"compression": recipe.compression.model_dump(mode="json")}
        if recipe.calibration is not None:
            p["calibration"] = recipe.calibration.model_dump(mode="json")
        return p

    def tool_versions(self) -> dict[str, str]:
        return {"code": code_digest("exporter", "calibration"), **versions("nncf", "openvino")}

    def run(self, ctx: StepContext) -> dict:
        import openvino as ov

        core = ov.Core()
        report: dict[str, dict] = {}
        for key, part in PART_OF_RECIPE_KEY.items():
            policy = getattr(ctx.recipe.compression, key)
            xml = IR_OF_PART[part]
            src = ctx.inputs[SOURCE_ARTIFACT[part]]
            if policy is None:
                for f in ir_files(xml):
                    link_or_copy(src / f, ctx.out / f)
                stats = weight_bit_stats(core.read_model(src / xml))
            else:
                model = core.read_model(src / xml)
                dataset = None
                if policy.data_aware:
                    from ovexport.calibration import calibration_dataset
                    dataset = calibration_dataset(ctx.recipe, part, ctx.inputs, ctx.log)
                ctx.log(f"compressing {part}: {policy.mode}")
                # NNCF draws its own progress bar: no live display of ours while it runs
                model = compress_model(model, policy, dataset)
                stats = weight_bit_stats(model)
                save_ir(model, ctx.out, xml)
                del model
            report[part] = {"policy": None if policy is None else policy.model_dump(mode="json"),
                            "weights": stats, "distribution": bit_distribution(stats)}
        (ctx.out / COMPRESSION).write_text(json.dumps(report, indent=2))
        return {part: {k: v["layers"] for k, v in r["weights"].items() if v["layers"]} for part, r in report.items()}

