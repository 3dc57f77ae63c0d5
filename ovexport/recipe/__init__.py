"""WHAT to build: the recipe schema, YAML loading with file:line errors, --set overrides, sources."""
from ovexport.recipe.load import load_any, load_pipeline, load_recipe, parse_override
from ovexport.recipe.schema import (
    CalibrationSpec,
    CompressionSpec,
    EndToEndThresholds,
    ExportSpec,
    IgnoredScopeSpec,
    ImageEncoderThresholds,
    LLMThresholds,
    OutputSpec,
    PartCompression,
    PipelinePublish,
    PipelineSpec,
    PublishSpec,
    Recipe,
    TextEmbeddingsThresholds,
    ThresholdsSpec,
    ValidationSpec,
    step_names,
)
from ovexport.recipe.source import CalibrationSource, Source, parse_calibration_source, parse_source

__all__ = [
    "step_names",
    "CalibrationSpec", "CompressionSpec", "EndToEndThresholds", "ExportSpec", "IgnoredScopeSpec",
    "ImageEncoderThresholds", "LLMThresholds", "OutputSpec", "PartCompression", "PipelinePublish",
    "PipelineSpec", "PublishSpec", "Recipe", "TextEmbeddingsThresholds", "ThresholdsSpec", "ValidationSpec",
    "CalibrationSource", "Source", "parse_calibration_source", "parse_source",
    "load_any", "load_pipeline", "load_recipe", "parse_override",
]
