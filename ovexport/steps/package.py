"""package: assemble the versioned bundle ``<output.root>/<name>/<version>/`` with its manifest."""
from __future__ import annotations

from pathlib import Path

from ovexport import __version__
from ovexport.bundle.contents import gather_files, read_compression
from ovexport.bundle.layout import VALIDATION
from ovexport.bundle.manifest import write_manifest
from ovexport.bundle.manifest_content import manifest_content
from ovexport.bundle.reproducible import local_paths, record_checkpoint, ship_validation
from ovexport.engine.lock import Lock
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.models.registry import family_for
from ovexport.publish.bundle_card import write_bundle_card

from .family_code import RunsFamilyCode


@register_step
class Package(RunsFamilyCode, Step):
    name = "package"
    consumes = ("checkpoint", "compressed_ir")
    optional = ("validation",)
    produces = "bundle"
    isolate = False
    run_cache = False  # reads the lock and stamps created_at: not a pure function of its fingerprint

    def params(self, recipe) -> dict:
        return {"recipe": recipe.resolved()}

    def tool_versions(self) -> dict[str, str]:
        return {"ovexport": __version__}

    def output_path(self, recipe, work: Path) -> Path:
        return Path(recipe.output.root).expanduser().absolute() / recipe.name / recipe.version

    def run(self, ctx: StepContext) -> dict:
        ckpt, irs, recipe = ctx.inputs["checkpoint"], ctx.inputs["compressed_ir"], ctx.recipe
        family = family_for(ckpt)
        gather_files(family, ckpt, irs, ctx.out)
        # nothing of this machine goes into the bundle: paths, timings and clock readings stay in the lock
        # and in the manifest's build record (reproducible bundles, see bundle/reproducible.py)
        machine = local_paths(ckpt, irs, ctx.work, ctx.out, Path(recipe.output.root))
        validation = (ship_validation(ctx.inputs["validation"] / VALIDATION, machine, ctx.out)
                      if "validation" in ctx.inputs else None)
        src = recipe.source_spec
        content = manifest_content(
            name=recipe.name, version=recipe.version, family=family.name, recipe=recipe.resolved(family),
            source={"uri": src.uri, "kind": src.kind, "repo_id": src.repo_id, "revision": src.revision},
            lock=Lock.for_work(ctx.work), compression=read_compression(irs), validation=validation,
            machine=machine, step=self.name)
        # a bundle is a function of its inputs: compare's figures (made by another command, if it ran) are not
        # one of them; `ovexport publish --compare` puts them on the published card
        publishing = family.publishing()
        if publishing is not None:
            publish = recipe.output.publish
            write_bundle_card(ctx.out, content, publishing, publish and publish.repo_id, ckpt)
        manifest = write_manifest(ctx.out, content)
        record_checkpoint(ctx.work, recipe.version, ckpt)   # for `ovexport validate` on this machine
        return {"files": len(manifest["files"]), "bytes": sum(f["size"] for f in manifest["files"].values())}
