"""package: assemble the versioned bundle ``<output.root>/<name>/<version>/`` with its manifest."""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from ovexport import __version__
from ovexport.bundle.layout import COMPRESSION, IR_OF_PART, MANIFEST, VALIDATION, ir_files
from ovexport.bundle.manifest import FORMAT, file_entries
from ovexport.engine.lock import Lock
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.models.registry import family_for
from ovexport.recipe.load import resolved_dict

from .common import link_or_copy, versions

PACKAGES = ("openvino", "nncf", "torch", "transformers", "timm", "huggingface_hub", "safetensors", "sentencepiece")


@register_step
class Package(Step):
    name = "package"
    consumes = ("checkpoint", "compressed_ir")
    optional = ("validation",)
    produces = "bundle"
    isolate = False
    run_cache = False  # reads the lock and stamps created_at: not a pure function of its fingerprint

    def params(self, recipe) -> dict:
        return {"recipe": resolved_dict(recipe)}

    def tool_versions(self) -> dict[str, str]:
        return {"ovexport": __version__}

    def output_path(self, recipe, work: Path) -> Path:
        return Path(recipe.output.root).expanduser().absolute() / recipe.name / recipe.version

    def run(self, ctx: StepContext) -> dict:
        ckpt, irs = ctx.inputs["checkpoint"], ctx.inputs["compressed_ir"]
        family = family_for(ckpt)
        for xml in IR_OF_PART.values():
            for f in ir_files(xml):
                link_or_copy(irs / f, ctx.out / f)
        for name in family.bundle_files:
            if (ckpt / name).is_file():
                link_or_copy(ckpt / name, ctx.out / name)
        compression = json.loads((irs / COMPRESSION).read_text()) if (irs / COMPRESSION).is_file() else {}
        validation = None
        if "validation" in ctx.inputs and (ctx.inputs["validation"] / VALIDATION).is_file():
            link_or_copy(ctx.inputs["validation"] / VALIDATION, ctx.out / VALIDATION)
            validation = json.loads((ctx.out / VALIDATION).read_text())
        lock = Lock.for_work(ctx.work)
        src = ctx.recipe.source_spec
        source = {"uri": src.uri, "kind": src.kind, "repo_id": src.repo_id, "revision": src.revision,
                  "checkpoint": str(ckpt)}
        ckpt_meta = lock.get("download") or {}
        manifest = {
            "format": FORMAT,
            "name": ctx.recipe.name,
            "version": ctx.recipe.version,
            "model_family": family.name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "recipe": resolved_dict(ctx.recipe),
            "source": {**source, "checkpoint_digest": ckpt_meta.get("output", {}).get("digest")},
            "packages": {"ovexport": __version__, **versions(*PACKAGES), "python": platform.python_version()},
            "steps": {name: entry.get("fingerprint") for name, entry in lock.steps.items() if name != self.name},
            "compression": compression,
            "validation": None if validation is None else {
                "passed": validation.get("passed"), "ov_config": validation.get("ov_config"),
                "not_gated": validation.get("not_gated", []),
                "checks": {c["name"]: {"status": c.get("status"), "passed": c["passed"], "metrics": c["metrics"]}
                           for c in validation.get("checks", [])}},
            "files": file_entries(ctx.out),
        }
        (ctx.out / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        return {"files": len(manifest["files"]), "bytes": sum(f["size"] for f in manifest["files"].values())}
