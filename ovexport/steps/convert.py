"""convert_text_embeddings / convert_llm / convert_image_encoder: one PyTorch part -> one IR each."""
from __future__ import annotations

from ovexport.engine.code_digest import versions
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.exporter.convert import convert_part, save_ir
from ovexport.exporter.spec import as_specs
from ovexport.errors import RecipeError
from ovexport.models.registry import family_for
from ovexport.parts import Part, part as part_named

from .family_code import RunsFamilyCode


def _names(key: str) -> tuple[str, str, str]:
    """(step name, artifact, part key) of the step converting part ``key``, from the parts table."""
    p: Part = part_named(key)
    return p.convert_step, p.converted, p.key


class ConvertPart(RunsFamilyCode, Step):
    part: str = ""
    preload = ("torch", "openvino")
    consumes = ("checkpoint",)
    code_roles = ("export",)

    def params(self, recipe) -> dict:
        return {"part": self.part, "weight_dtype": recipe.export.weight_dtype}

    def tool_versions(self) -> dict[str, str]:
        return {"code": self.code(), **versions("openvino", "torch", "timm")}

    def check_recipe(self, family, recipe) -> None:
        """Raise ``RecipeError`` when the recipe asks something of this part the family cannot do."""

    def run(self, ctx: StepContext) -> dict:
        ckpt = ctx.inputs["checkpoint"]
        family = family_for(ckpt)
        if self.part not in family.parts:
            raise RecipeError([f"{family.display_name} has no {self.part} part"],
                              fix=f"remove {self.name} from the recipe's steps")
        self.check_recipe(family, ctx.recipe)
        specs = family.part_specs(ckpt, weight_dtype=ctx.recipe.export.weight_dtype,
                                  trace_image_size=ctx.recipe.trace_size(family))[self.part]
        # a part is one IR, or several (ModelFamily.ir_layout): each is traced and saved on its own
        files = {}
        for spec in as_specs(specs):
            with ctx.progress(f"tracing {spec.name} ({spec.filename})", total=None):
                ov_model = convert_part(spec, ctx.recipe.export.weight_dtype)
            with ctx.progress(f"saving {spec.filename}", total=None):
                save_ir(ov_model, ctx.out, spec.filename)
            files[spec.filename] = {"inputs": len(ov_model.inputs), "outputs": len(ov_model.outputs)}
            del ov_model
        return {"files": files, "model_family": family.name}


@register_step
class ConvertTextEmbeddings(ConvertPart):
    name, produces, part = _names("text_embeddings")


@register_step
class ConvertLLM(ConvertPart):
    name, produces, part = _names("llm")


@register_step
class ConvertImageEncoder(ConvertPart):
    name, produces, part = _names("image_encoder")

    def params(self, recipe) -> dict:
        # None (a Hub source before its download, no size given): the family's default, whose registration
        # module the code fingerprint hashes
        return {**super().params(recipe), "trace_image_size": recipe.trace_size()}

    def check_recipe(self, family, recipe) -> None:
        # the recipe schema checks this already when it knows the family (synthetic or local sources)
        size = recipe.trace_size(family)
        problem = family.trace_size_problem(size)
        if problem:
            raise RecipeError([f"export.trace_image_size {size}: {problem}"],
                              fix=f"set export.trace_image_size to a size {family.display_name} can be traced at")
