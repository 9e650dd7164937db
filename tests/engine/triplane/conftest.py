"""Shared fixtures: a micro generator (same code path as the presets, tiny numbers) for fast tests."""

from __future__ import annotations

import pytest
import torch

from engine.camera import orbit_label
from engine.triplane.config import (
    DecoderConfig,
    GeneratorConfig,
    MappingConfig,
    RenderConfig,
    SuperResConfig,
    SynthesisConfig,
)
from engine.triplane.generator import TriplaneGenerator


def micro_config(semantic_classes: int = 5) -> GeneratorConfig:
    return GeneratorConfig(
        mapping=MappingConfig(z_dim=16, w_dim=16),
        synthesis=SynthesisConfig(plane_resolution=16, plane_channels=4, channel_base=128, channel_max=16),
        decoder=DecoderConfig(hidden=8, feature_channels=4, semantic_classes=semantic_classes),
        render=RenderConfig(resolution=8, depth_samples=6, importance_samples=6),
        superres=SuperResConfig(channels=(8, 4), output_resolution=32),
    )


@pytest.fixture
def micro() -> TriplaneGenerator:
    torch.manual_seed(1234)
    return TriplaneGenerator(micro_config()).eval()


def cameras(n: int) -> torch.Tensor:
    """n distinct orbit cameras ``(n, 25)``."""
    return torch.stack(
        [torch.tensor(orbit_label(-20.0 + 13.0 * i, 8.0 - 5.0 * i), dtype=torch.float32) for i in range(n)]
    )
