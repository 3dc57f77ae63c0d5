"""``ovexport matrix pipeline.yaml``: the release matrix for GitHub Actions, one entry per recipe.

Each entry: the recipe file (relative to the pipeline file's directory, where the workflow runs), its name and version, where
it is published (or null), the memory and disk its job needs (from the model family), and the Hub cache key of
its source. Printed as ``{"include": [...]}`` so ``strategy.matrix: ${{ fromJSON(...) }}`` takes it as is.
"""
from __future__ import annotations

import os
from pathlib import Path

from ovexport.errors import OvexportError
from ovexport.models.registry import families, family_of_source
from ovexport.recipe.load import load_pipeline


def _family_of(recipe):
    """The family a recipe builds, without the checkpoint (the matrix job downloads nothing): the one its source
    names (a synthetic size, a local checkpoint), else, with one registered family, that one."""
    family = family_of_source(recipe.source_spec)
    if family is not None:
        return family
    fams = families()
    if len(fams) != 1:
        raise OvexportError(f"{recipe.name}: cannot tell which of {', '.join(sorted(fams))} it builds "
                            "without its checkpoint", fix="run `ovexport matrix` where the checkpoints are cached")
    return next(iter(fams.values()))


def release_matrix(pipeline: str | Path, relative_to: str | Path | None = None) -> dict:
    spec, recipes = load_pipeline(pipeline)
    base = Path(relative_to or Path(pipeline).parent).absolute()  # the workflow runs where pipeline.yaml is
    entries = []
    for recipe in recipes:
        src = recipe.source_spec
        family = _family_of(recipe)
        publishing = family.publishing()
        resources = publishing.resources(src.kind, src.size) if publishing is not None else {}
        path = Path(recipe.path).absolute() if recipe.path else None
        entries.append({
            "recipe": os.path.relpath(path, base) if path else None,
            "name": recipe.name,
            "version": recipe.version,
            "repo_id": spec.publish_repo_id(recipe),
            "source": src.uri,
            "cache_key": f"hf-{src.repo_id}-{src.revision}".replace("/", "--") if src.repo_id else f"{src.kind}",
            **resources,
        })
    return {"include": entries}
