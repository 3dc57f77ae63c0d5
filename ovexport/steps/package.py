"""package: assemble the versioned bundle ``<output.root>/<name>/<version>/`` with its manifest."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from ovexport import __version__
from ovexport.bundle.layout import COMPRESSION, MANIFEST, VALIDATION, ir_files
from ovexport.bundle.manifest import BUILD, FORMAT, file_entries, validation_state, validation_summary
from ovexport.bundle.reproducible import LOCAL_SOURCES, bundle_validation, local_paths, scrub
from ovexport.engine.code_digest import link_or_copy, versions
from ovexport.engine.lock import Lock
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.models.registry import family_for
from ovexport.parts import family_ir_files
from ovexport.publish.card import CARD, render_card
from ovexport.validators.status import PASSED

from .family_code import RunsFamilyCode

def _license(ckpt: Path) -> str | None:
    """The source's license, from the metadata of its README.md (a Hub snapshot has one), else None."""
    readme = Path(ckpt) / "README.md"
    if not readme.is_file():
        return None
    try:
        from huggingface_hub import ModelCard
        return ModelCard.load(readme).data.to_dict().get("license")
    except Exception:  # noqa: BLE001 - an unreadable card just means an unknown license
        return None

PACKAGES = ("openvino", "nncf", "openvino_tokenizers", "torch", "transformers", "timm", "huggingface_hub",
            "safetensors", "sentencepiece")


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
        ckpt, irs = ctx.inputs["checkpoint"], ctx.inputs["compressed_ir"]
        family = family_for(ckpt)
        for xml in family_ir_files(family):
            for f in ir_files(xml):
                link_or_copy(irs / f, ctx.out / f)
        for name in family.bundle_files:
            if (ckpt / name).is_file():
                link_or_copy(ckpt / name, ctx.out / name)
        compression = json.loads((irs / COMPRESSION).read_text()) if (irs / COMPRESSION).is_file() else {}
        publishing = family.publishing()
        if publishing is not None:
            publishing.write_bundle_files(ckpt, ctx.out)
        # nothing of this machine goes into the bundle: paths, timings and clock readings stay in the lock
        # and in the manifest's build record (reproducible bundles, see bundle/reproducible.py)
        machine = local_paths(ckpt, irs, ctx.work, ctx.out, Path(ctx.recipe.output.root))
        validation = None
        if "validation" in ctx.inputs and (ctx.inputs["validation"] / VALIDATION).is_file():
            report = json.loads((ctx.inputs["validation"] / VALIDATION).read_text())
            validation = bundle_validation(report, machine)
            (ctx.out / VALIDATION).write_text(json.dumps(validation, indent=2, ensure_ascii=False) + "\n")
        summary = validation_summary(validation)
        src = ctx.recipe.source_spec
        source = {"uri": src.uri, "kind": src.kind, "repo_id": src.repo_id, "revision": src.revision}
        lock = Lock.for_work(ctx.work)
        ckpt_meta = lock.get("download") or {}
        recipe = ctx.recipe.resolved()
        recipe.get("output", {}).pop("root", None)  # where this machine keeps its bundles is no part of one
        manifest = {
            "format": FORMAT,
            "name": ctx.recipe.name,
            "version": ctx.recipe.version,
            "model_family": family.name,
            "recipe": recipe,
            "source": {**source, "checkpoint_digest": ckpt_meta.get("output", {}).get("digest")},
            "packages": {"ovexport": __version__, **versions(*PACKAGES), "python": platform.python_version()},
            "steps": {name: entry.get("fingerprint") for name, entry in lock.steps.items() if name != self.name},
            "compression": compression,
            "validated": validation_state({"validation": summary}) == PASSED,
            "validation": summary,
        }
        manifest = scrub(manifest, machine)
        # a bundle is a function of its inputs: compare's figures (made by another command, if it ran) are not
        # one of them; `ovexport publish --compare` puts them on the published card
        if publishing is not None:
            publish = ctx.recipe.output.publish
            (ctx.out / CARD).write_text(render_card(manifest, publishing, publish and publish.repo_id,
                                                    license=_license(ckpt)), encoding="utf-8")
        manifest["files"] = file_entries(ctx.out)
        manifest[BUILD] = {"created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (ctx.out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        # the checkpoint this bundle came from, for `ovexport validate` on this machine: outside the bundle
        local = ctx.work / LOCAL_SOURCES
        try:
            recorded = json.loads(local.read_text())
        except (OSError, ValueError):
            recorded = {}
        local.write_text(json.dumps({**recorded, ctx.recipe.version: str(ckpt)}, indent=1) + "\n")
        return {"files": len(manifest["files"]), "bytes": sum(f["size"] for f in manifest["files"].values())}
