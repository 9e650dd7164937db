"""Typed configuration of the tri-plane generator (one dataclass per component).

Every preset in :mod:`engine.triplane.presets` is an instance of :class:`GeneratorConfig`;
the same code path builds all of them. Configs round-trip through plain JSON dicts so a
bundle's manifest can carry them (:func:`config_to_dict`, :func:`config_from_dict`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar


@dataclass(frozen=True)
class MappingConfig:
    """Mapping network z, c -> w (REFERENCE-FACTS §7)."""

    z_dim: int = 512
    """Latent z size."""
    c_dim: int = 25
    """Conditioning size: the 25-number camera label (0 disables pose conditioning)."""
    w_dim: int = 512
    """Intermediate latent w size."""
    num_layers: int = 2
    """Depth of the FC stack after the z/c concat (EG3D FFHQ: 2)."""
    lr_multiplier: float = 0.01
    """Equalised-lr multiplier of the FC stack (StyleGAN2: 0.01)."""
    w_avg_beta: float = 0.998
    """EMA decay of the tracked mean w (used for truncation)."""


@dataclass(frozen=True)
class SynthesisConfig:
    """StyleGAN2 'skip' backbone that paints the tri-plane (REFERENCE-FACTS §8)."""

    plane_resolution: int = 256
    """Side of each plane R; the backbone runs 4 -> R, doubling per block."""
    plane_channels: int = 32
    """Channels C per plane; the backbone emits 3*C channels."""
    channel_base: int = 32768
    """Block channels = min(channel_base // res, channel_max)."""
    channel_max: int = 512
    """Upper bound on block channels."""
    conv_clamp: float | None = None
    """Optional activation clamp (EG3D uses 256 only under fp16; we run fp32)."""


@dataclass(frozen=True)
class DecoderConfig:
    """OSG decoder plus a semantic head (REFERENCE-FACTS §5)."""

    hidden: int = 64
    """Hidden width of the shared FC layer."""
    feature_channels: int = 32
    """Feature channels emitted besides density (first 3 are raw RGB)."""
    semantic_classes: int = 12
    """K: semantic logits per point (our synthetic class table has 12)."""
    lr_multiplier: float = 1.0
    """Equalised-lr multiplier (EG3D decoder_lr_mul = 1)."""


@dataclass(frozen=True)
class RenderConfig:
    """Ray sampling and marching (REFERENCE-FACTS §1-4, §9)."""

    resolution: int = 128
    """Neural rendering side (rays per image = resolution**2)."""
    depth_samples: int = 48
    """Stratified (coarse) samples per ray, D."""
    importance_samples: int = 48
    """Importance (fine) samples per ray, D_imp."""
    ray_start: float = 2.25
    """Near depth along the unit ray (Euclidean)."""
    ray_end: float = 3.3
    """Far depth along the unit ray."""
    box_warp: float = 1.0
    """Side of the cube the tri-plane spans, centred at the world origin."""


@dataclass(frozen=True)
class SuperResConfig:
    """Two StyleGAN2 synthesis blocks, each x2, RGB skip (REFERENCE-FACTS §6)."""

    channels: tuple[int, int] = (256, 128)
    """Output channels of block0 and block1."""
    output_resolution: int = 512
    """Final image side; must equal 4x the neural rendering resolution."""
    conv_clamp: float | None = None
    """Optional activation clamp of every SR layer, as in EG3D: conv layers clamp to
    +-conv_clamp after bias and lrelu gain, toRGB to +-conv_clamp. EG3D's FFHQ checkpoints
    use 256 (``sr_num_fp16_res=4`` turns it on); None (no clamp) keeps older bundles as they were."""


@dataclass(frozen=True)
class GeneratorConfig:
    """A full tri-plane generator; presets differ only in these numbers."""

    mapping: MappingConfig = field(default_factory=MappingConfig)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    superres: SuperResConfig = field(default_factory=SuperResConfig)

    def __post_init__(self) -> None:
        r = self.synthesis.plane_resolution
        if r < 4 or r & (r - 1):
            raise ValueError(f"plane_resolution must be a power of two >= 4, got {r}")
        if self.decoder.feature_channels != self.synthesis.plane_channels:
            # EG3D decodes C plane channels into C feature channels; SR reads them all.
            raise ValueError(
                f"decoder.feature_channels ({self.decoder.feature_channels}) must equal "
                f"synthesis.plane_channels ({self.synthesis.plane_channels})"
            )
        if self.decoder.feature_channels < 3:
            raise ValueError("decoder.feature_channels must be >= 3 (the first three are RGB)")
        if self.superres.output_resolution != 4 * self.render.resolution:
            raise ValueError(
                f"superres.output_resolution ({self.superres.output_resolution}) must be 4x "
                f"render.resolution ({self.render.resolution})"
            )
        if self.render.depth_samples < 4:
            raise ValueError("render.depth_samples must be >= 4 (importance weights use D - 3 bins)")
        if not self.render.ray_end > self.render.ray_start > 0:
            raise ValueError("need 0 < render.ray_start < render.ray_end")


C = TypeVar("C")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild a config dataclass from :func:`config_to_dict` output.

    Fields missing from ``data`` take their defaults, so manifests written before a field
    existed still load (e.g. ``superres.conv_clamp`` -> None).

    Raises:
        ValueError: unknown fields, a missing field that has no default, or a value of the
            wrong type.
    """
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    required = sorted(
        name
        for name, f in fields.items()
        if name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    if required:
        raise ValueError(f"{cls.__name__}: missing fields {required}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{cls.__name__}.{name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return config_from_dict(tp, value)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        return tuple(_coerce(args[0], v, where) for v in value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    return value
