"""A pipeline file (``pipeline.yaml``): the recipes a release builds and where they are published."""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pydantic import Field, field_validator

from .fields import StrictModel
from .names import REPO_ID_RE

if TYPE_CHECKING:
    from .schema import Recipe


class PipelinePublish(StrictModel):
    repo_id_prefix: str = Field(description="a recipe without output.publish is published to "
                                            "<repo_id_prefix><recipe name>, e.g. 'myorg/' or 'myorg/ov-'")

    @field_validator("repo_id_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not REPO_ID_RE.match(v + "x"):
            raise ValueError(f"{v!r} must be '<owner>/' or '<owner>/<name prefix>' so that adding a recipe "
                             "name gives a Hugging Face repo id")
        return v


class PipelineSpec(StrictModel):
    recipes: list[str] = Field(min_length=1, description="recipe files, relative to the pipeline file")
    publish: Optional[PipelinePublish] = None

    def publish_repo_id(self, recipe: Recipe) -> str | None:
        """Where ``recipe`` is published: its own output.publish.repo_id, else prefix + name, else None."""
        if recipe.output.publish is not None:
            return recipe.output.publish.repo_id
        if self.publish is not None:
            return self.publish.repo_id_prefix + recipe.name
        return None
