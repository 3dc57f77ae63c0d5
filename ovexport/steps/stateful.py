"""make_stateful: the LLM IR's KV cache becomes OpenVINO state, with a beam_idx input."""
from __future__ import annotations

from ovexport.engine.code_digest import versions
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.exporter.convert import save_ir
from ovexport.exporter.stateful import make_stateful
from ovexport.models.registry import family_for
from ovexport.parts import part

from .family_code import RunsFamilyCode

LLM = part("llm")


@register_step
class MakeStateful(RunsFamilyCode, Step):
    name = "make_stateful"
    consumes = ("checkpoint", LLM.converted)
    produces = LLM.source_artifact
    preload = ("torch", "openvino")
    code_roles = ("export",)   # part_specs: the LLM's stateful spec

    def params(self, recipe) -> dict:
        return {}

    def tool_versions(self) -> dict[str, str]:
        return {"code": self.code(), **versions("openvino")}

    def run(self, ctx: StepContext) -> dict:
        import openvino as ov

        ckpt = ctx.inputs["checkpoint"]
        spec = family_for(ckpt).part_specs(ckpt, weight_dtype=ctx.recipe.export.weight_dtype)[LLM.key]
        model = ov.Core().read_model(ctx.inputs[LLM.converted] / spec.filename)
        make_stateful(model, spec.stateful)
        with ctx.progress(f"saving {spec.filename}", total=None):
            save_ir(model, ctx.out, spec.filename)
        return {"states": len(model.get_sinks()), "inputs": [p.get_any_name() for p in model.inputs]}
