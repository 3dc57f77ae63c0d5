"""convert_text_embeddings / convert_llm / convert_image_encoder: one PyTorch part -> one IR each."""
from __future__ import annotations

from ovexport.engine.step import Step, StepContext, register_step
from ovexport.exporter.convert import convert_part, save_ir
from ovexport.models.registry import family_for

from .common import code_digest, versions


class ConvertPart(Step):
    part: str = ""
    preload = ("torch", "openvino")
    consumes = ("checkpoint",)

    def params(self, recipe) -> dict:
        return {"part": self.part, "weight_dtype": recipe.export.weight_dtype}

    def tool_versions(self) -> dict[str, str]:
        return {"code": code_digest("models", "exporter"), **versions("openvino", "torch", "timm")}

    def run(self, ctx: StepContext) -> dict:
        ckpt = ctx.inputs["checkpoint"]
        family = family_for(ckpt)
        spec = family.part_specs(ckpt, weight_dtype=ctx.recipe.export.weight_dtype,
                                 trace_image_size=ctx.recipe.export.trace_image_size)[self.part]
        with ctx.progress(f"tracing {spec.name}", total=None):
            ov_model = convert_part(spec, ctx.recipe.export.weight_dtype)
        with ctx.progress(f"saving {spec.filename}", total=None):
            save_ir(ov_model, ctx.out, spec.filename)
        return {"file": spec.filename, "inputs": len(ov_model.inputs), "outputs": len(ov_model.outputs),
                "model_family": family.name}


@register_step
class ConvertTextEmbeddings(ConvertPart):
    name = "convert_text_embeddings"
    produces = "text_embeddings_ir"
    part = "text_embeddings"


@register_step
class ConvertLLM(ConvertPart):
    name = "convert_llm"
    produces = "llm_ir"
    part = "language_model"


@register_step
class ConvertImageEncoder(ConvertPart):
    name = "convert_image_encoder"
    produces = "image_encoder_ir"
    part = "image_encoder"

    def params(self, recipe) -> dict:
        return {**super().params(recipe), "trace_image_size": recipe.export.trace_image_size}
