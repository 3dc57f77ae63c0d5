"""What every recipe-schema module shares: the strict base model, constrained number types, and ``raise_at``."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

Ratio = Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Cosine = Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def raise_at(title: str, problems: list[tuple[tuple[str | int, ...], str, Any]]) -> None:
    """Raise a pydantic ValidationError whose errors sit at the given locations (relative to the model being
    validated), so that a model-level rule can point at the offending field (and the loader at its line)."""
    if not problems:
        return
    details = [
        InitErrorDetails(type=PydanticCustomError("recipe_rule", "{reason}", {"reason": msg}), loc=loc, input=value)
        for loc, msg, value in problems
    ]
    raise ValidationError.from_exception_data(title, details)


class StrictModel(BaseModel):
    """Every recipe model rejects unknown keys."""

    model_config = ConfigDict(extra="forbid")
