"""Named generator configurations built by one code path.

``eg3d`` reproduces EG3D's FFHQ 512 generator shapes (REFERENCE-FACTS §6-9) plus our
semantic head. ``tiny`` is our choice for CPU training and tests: same architecture,
scaled down (z/w 64, 16-channel planes at 64^2, 32^2 neural rendering with 24 + 24
samples, super-resolution to 128).
"""

from __future__ import annotations

from engine.triplane.config import (
    DecoderConfig,
    GeneratorConfig,
    MappingConfig,
    RenderConfig,
    SuperResConfig,
    SynthesisConfig,
)


def eg3d(*, semantic_classes: int = 12) -> GeneratorConfig:
    """EG3D FFHQ 512 (ffhq512-128): 14 ws, 32 x 256^2 planes, 128^2 x (48 + 48), SR to 512."""
    return GeneratorConfig(
        mapping=MappingConfig(z_dim=512, c_dim=25, w_dim=512, num_layers=2),
        synthesis=SynthesisConfig(
            plane_resolution=256, plane_channels=32, channel_base=32768, channel_max=512
        ),
        decoder=DecoderConfig(hidden=64, feature_channels=32, semantic_classes=semantic_classes),
        render=RenderConfig(
            resolution=128, depth_samples=48, importance_samples=48, ray_start=2.25, ray_end=3.3
        ),
        # sr_num_fp16_res defaults to 4 in EG3D's train.py, so Hybrid8XDC builds its blocks
        # with conv_clamp=256 (the backbone runs fp32 without a clamp).
        superres=SuperResConfig(channels=(256, 128), output_resolution=512, conv_clamp=256.0),
    )


def tiny(*, semantic_classes: int = 12) -> GeneratorConfig:
    """CPU-sized: 10 ws, 16 x 64^2 planes, 32^2 x (24 + 24), SR to 128."""
    return GeneratorConfig(
        mapping=MappingConfig(z_dim=64, c_dim=25, w_dim=64, num_layers=2),
        synthesis=SynthesisConfig(plane_resolution=64, plane_channels=16, channel_base=2048, channel_max=64),
        decoder=DecoderConfig(hidden=32, feature_channels=16, semantic_classes=semantic_classes),
        render=RenderConfig(
            resolution=32, depth_samples=24, importance_samples=24, ray_start=2.25, ray_end=3.3
        ),
        superres=SuperResConfig(channels=(32, 16), output_resolution=128),
    )


PRESETS = {"tiny": tiny, "eg3d": eg3d}


def preset(name: str, *, semantic_classes: int = 12) -> GeneratorConfig:
    """Config of a named preset.

    Raises:
        KeyError: unknown preset name (the message lists the known ones).
    """
    try:
        factory = PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}") from None
    return factory(semantic_classes=semantic_classes)
