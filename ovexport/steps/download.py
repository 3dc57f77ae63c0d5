"""download: make the checkpoint available as the ``checkpoint`` artifact (Hub, local folder, or synthetic)."""
from __future__ import annotations

import os
from pathlib import Path

from ovexport.engine.code_digest import versions
from ovexport.engine.step import Step, StepContext, register_step
from ovexport.errors import CheckpointError, SourceError
from ovexport.models.registry import family_for, synthetic_code_digest, write_synthetic

from .family_code import RunsFamilyCode

HUB_PATTERNS = ["*.json", "*.safetensors", "tokenizer.model", "*.py", "*.txt", "*.md"]


def _link_tree(src: Path, out: Path) -> None:
    """Symlink every file of ``src`` into ``out``: a 7 GB checkpoint is never copied."""
    for f in sorted(src.iterdir()):
        if f.is_file():
            os.symlink(f.resolve(), out / f.name)


def _check_complete(ckpt: Path, where: str) -> None:
    if not (ckpt / "config.json").is_file():
        raise CheckpointError(f"{where} has no config.json",
                              fix="point the recipe's source at a complete checkpoint directory")
    family = family_for(ckpt)             # raises a clear error for an unsupported model
    missing = [n for n in family.required_files if not (ckpt / n).is_file()]
    if missing:
        raise CheckpointError(f"{where} has no {', '.join(missing)}",
                              fix=f"point the recipe's source at a complete {family.display_name} checkpoint")


def hub_snapshot(repo_id: str, revision: str, cache_dir: str | None = None) -> Path:
    """``huggingface_hub.snapshot_download`` of one pinned revision, with one-line errors."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    try:
        return Path(snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=HUB_PATTERNS,
                                      cache_dir=cache_dir))
    except RevisionNotFoundError:
        raise SourceError(f"revision {revision} of {repo_id} does not exist on the Hub",
                          fix="pin an existing commit sha in the recipe's source") from None
    except RepositoryNotFoundError:
        raise SourceError(f"repository {repo_id} does not exist on the Hub (or needs a token)",
                          fix="check the repo id, or log in with `hf auth login`") from None
    except LocalEntryNotFoundError:
        raise SourceError(f"cannot reach the Hugging Face Hub to download {repo_id}@{revision[:12]}, and it is "
                          "not in the local cache",
                          fix="connect to the network, or pre-fill the cache (HF_HUB_CACHE) and set HF_HUB_OFFLINE=1, "
                              "or use a local directory as source") from None
    except OSError as e:
        raise SourceError(f"cannot download {repo_id}@{revision[:12]} from the Hugging Face Hub ({e.__class__.__name__})",
                          fix="check the network and HF_ENDPOINT, or use a local directory as source") from None


@register_step
class Download(RunsFamilyCode, Step):
    name = "download"
    produces = "checkpoint"
    preload = ("torch", "openvino")

    def params(self, recipe) -> dict:
        src = recipe.source_spec
        if src.kind == "synthetic":
            # a synthetic checkpoint depends on the code that writes it (and on nothing else of ours)
            return {"source": src.uri, "synth": synthetic_code_digest(src.size)}
        return {"source": src.uri}

    def tool_versions(self) -> dict[str, str]:
        return versions("huggingface_hub", "torch")

    def run(self, ctx: StepContext) -> dict:
        src = ctx.recipe.source_spec
        if src.kind == "synthetic":
            with ctx.progress(f"writing synthetic {src.size} checkpoint", total=None) as advance:
                last = [0]

                def progress(done: int, total: int) -> None:
                    advance(done - last[0])
                    last[0] = done
                write_synthetic(src.size, ctx.out, seed=src.seed, progress=progress)
            return {"kind": "synthetic", "size": src.size, "seed": src.seed}
        if src.kind == "local":
            path = Path(src.path)
            if not path.is_dir():
                raise CheckpointError(f"local checkpoint directory {path} does not exist",
                                      fix="fix the recipe's source path (relative paths start at the recipe file)")
            _check_complete(path, str(path))
            _link_tree(path, ctx.out)
            return {"kind": "local", "path": str(path)}
        ctx.log(f"downloading {src.repo_id}@{src.revision[:12]} (huggingface_hub)")
        snap = hub_snapshot(src.repo_id, src.revision)
        _check_complete(snap, f"{src.repo_id}@{src.revision[:12]}")
        _link_tree(snap, ctx.out)
        return {"kind": "hf", "repo_id": src.repo_id, "revision": src.revision, "snapshot": str(snap)}
