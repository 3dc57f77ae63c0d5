"""``ovexport matrix pipeline.yaml``: the release matrix for GitHub Actions, one entry per recipe.

Each entry: the recipe file (relative to the pipeline file's directory, where the workflow runs), its name and version, where
it is published (or null), the memory and disk its job needs (from the model family: ``resources(recipe)``), the
runner it runs on, and the Hub cache key of its source. Printed as ``{"include": [...]}`` so
``strategy.matrix: ${{ fromJSON(...) }}`` takes it as is.

``runs_on``: GitHub's standard Linux runner when the recipe fits it (:data:`STANDARD_RUNNER`), else the label
given as ``large_runner`` (``ovexport matrix --large-runner``: a larger runner of the organisation); a recipe that
fits neither is an error, not a job that fails after an hour.
"""
from __future__ import annotations

import os
from pathlib import Path

from ovexport.errors import OvexportError
from ovexport.models.registry import families, family_of_source
from ovexport.recipe.load import load_pipeline


# ubuntu-24.04 for a public repository: 4 cores, 16 GiB of memory; 14 GB of free disk as it starts, about 30 GiB on
# the build disk once release.yml's "free disk space" step has removed the preinstalled toolchains (or /mnt)
STANDARD_RUNNER = {"label": "ubuntu-24.04", "memory_gb": 16, "disk_gb": 30}


def runner_for(entry: dict, large_runner: str | None) -> str:
    """The runner label of a matrix entry that needs ``memory_gb`` and ``disk_gb``."""
    std = STANDARD_RUNNER
    if entry.get("memory_gb", 0) <= std["memory_gb"] and entry.get("disk_gb", 0) <= std["disk_gb"]:
        return std["label"]
    if large_runner:
        return large_runner
    raise OvexportError(f"{entry['name']} needs {entry.get('memory_gb')} GiB of memory and {entry.get('disk_gb')} GiB "
                        f"of disk, more than {std['label']} has ({std['memory_gb']} and {std['disk_gb']})",
                        fix="pass --large-runner <label of a larger runner> (release.yml: the OVEXPORT_LARGE_RUNNER "
                            "repository variable)")


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


def release_matrix(pipeline: str | Path, relative_to: str | Path | None = None,
                   large_runner: str | None = None) -> dict:
    spec, recipes = load_pipeline(pipeline)
    base = Path(relative_to or Path(pipeline).parent).absolute()  # the workflow runs where pipeline.yaml is
    entries = []
    for recipe in recipes:
        src = recipe.source_spec
        family = _family_of(recipe)
        publishing = family.publishing()
        resources = publishing.resources(recipe) if publishing is not None else {}
        path = Path(recipe.path).absolute() if recipe.path else None
        entry = {
            "recipe": os.path.relpath(path, base) if path else None,
            "name": recipe.name,
            "version": recipe.version,
            "repo_id": spec.publish_repo_id(recipe),
            "source": src.uri,
            "cache_key": f"hf-{src.repo_id}-{src.revision}".replace("/", "--") if src.repo_id else f"{src.kind}",
            **resources,
        }
        entries.append({**entry, "runs_on": runner_for(entry, large_runner)})
    return {"include": entries}
