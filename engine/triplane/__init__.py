"""Tri-plane core: style-based generator with an exposed S space, volume renderer with a semantic head."""

from engine.triplane.config import GeneratorConfig
from engine.triplane.generator import GeneratorOutput, TriplaneGenerator
from engine.triplane.presets import preset
from engine.triplane.renderer import RenderNoise
from engine.triplane.stylespace import StyleSpaceTable

__all__ = [
    "GeneratorConfig",
    "GeneratorOutput",
    "RenderNoise",
    "StyleSpaceTable",
    "TriplaneGenerator",
    "preset",
]
