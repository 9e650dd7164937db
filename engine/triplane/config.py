"""Typed configuration of the tri-plane generator (one dataclass per component).

Every preset in :mod:`engine.triplane.presets` is an instance of :class:`GeneratorConfig`;
the same code path builds all of them. Configs round-trip through plain JSON dicts so a
bundle's manifest can carry them (:func:`config_to_dict`, :func:`config_from_dict`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar


class ConfigError(ValueError):
    """A dict that does not describe a config. ``field`` is the dotted path at fault relative to
    the dict parsed (``synthesis.plane_channels``; tuple items as ``low_channels[1]``) and
    ``problem`` what is wrong with it; ``str()`` gives both."""

    def __init__(self, problem: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {problem}" if field else problem)
        self.problem = problem
        self.field = field

    def within(self, prefix: str) -> ConfigError:
        """The same error, seen from the object that holds this one under ``prefix``."""
        return ConfigError(self.problem, field=f"{prefix}.{self.field}" if self.field else prefix)


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
            raise ConfigError(f"must be a power of two >= 4, got {r}", field="synthesis.plane_resolution")
        if self.synthesis.channel_base < r:
            # The last block gets channel_base // R channels; zero channels is no layer at all.
            raise ConfigError(
                f"({self.synthesis.channel_base}) must be >= synthesis.plane_resolution ({r})",
                field="synthesis.channel_base",
            )
        if self.decoder.feature_channels != self.synthesis.plane_channels:
            # EG3D decodes C plane channels into C feature channels; SR reads them all.
            raise ConfigError(
                f"({self.decoder.feature_channels}) must equal synthesis.plane_channels "
                f"({self.synthesis.plane_channels})",
                field="decoder.feature_channels",
            )
        if self.decoder.feature_channels < 3:
            raise ConfigError("must be >= 3 (the first three are RGB)", field="decoder.feature_channels")
        if self.superres.output_resolution != 4 * self.render.resolution:
            raise ConfigError(
                f"({self.superres.output_resolution}) must be 4x render.resolution ({self.render.resolution})",
                field="superres.output_resolution",
            )
        if self.render.depth_samples < 4:
            raise ConfigError("must be >= 4 (importance weights use D - 3 bins)", field="render.depth_samples")
        if not self.render.ray_end > self.render.ray_start > 0:
            raise ConfigError("need 0 < render.ray_start < render.ray_end", field="render.ray_start")


C = TypeVar("C")

MAX_INT = 1 << 16
"""Largest integer a config may hold: no size or count here comes near it (EG3D's largest,
``channel_base``, is 32768), and a larger one in a manifest is corruption, refused before any
model is built."""
NUMBER_BOUNDS: dict[str, tuple[float, float]] = {
    "MappingConfig.c_dim": (0, MAX_INT),  # 0 disables pose conditioning
    "MappingConfig.w_avg_beta": (0.0, 1.0),  # an EMA decay
    # A count of modules (StyleGAN uses 8): a corrupt value would build thousands of layers first.
    "MappingConfig.num_layers": (1, 64),
}
"""Inclusive bounds of the numeric fields (``Class.field``) that differ from the rule: every other
number in a config is a size, count, rate or distance, so an int lies in [1, MAX_INT] and a float
is finite and > 0."""
LATE_FIELDS = frozenset({"SuperResConfig.conv_clamp"})
"""Fields added after bundles were first written; a strict parse lets a manifest omit them
because their default reproduces the older model (no SR clamp)."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a (nested) config dataclass; tuples become lists."""
    return dataclasses.asdict(config)


def config_from_dict(cls: type[C], data: Any, *, strict: bool = False) -> C:
    """Rebuild a config dataclass from :func:`config_to_dict` output, checking every value.

    Each value must match its annotation exactly: an int (not a bool, not 64.0), a finite float
    (an int is accepted), a bool, a str, a ``Literal`` choice, a list of the annotated length for
    a fixed ``tuple[...]``, or an object for a nested config; numbers must lie within the bounds
    of :data:`NUMBER_BOUNDS`. Unknown fields are refused.

    Args:
        strict: every field must be present, as in every manifest this code writes, except
            :data:`LATE_FIELDS`. Otherwise missing fields take their defaults (partial configs in
            training checkpoints and tests).
    Raises:
        ConfigError: (a ValueError) naming the field at fault.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"expected an object, got {_show(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        raise ConfigError(f"is not a field of {cls.__name__} (unknown fields {unknown})", field=str(unknown[0]))
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{cls.__name__}.{name}"
        if name not in data:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if not has_default:
                raise ConfigError("missing", field=name)
            if strict and key not in LATE_FIELDS:
                raise ConfigError("missing (a bundle's manifest lists every field, defaults included)", field=name)
            continue
        kwargs[name] = _decode(hints[name], data[name], field=name, key=key, strict=strict)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:  # a cross-field check in __post_init__
        raise ConfigError(str(e)) from e


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _decode(tp: Any, value: Any, *, field: str, key: str, strict: bool) -> Any:
    """``value`` as annotation ``tp``; ``field`` names it in errors, ``key`` looks up its bounds."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        try:
            return config_from_dict(tp, value, strict=strict)
        except ConfigError as e:
            raise e.within(field) from e
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"{key}: unsupported annotation {tp!r}")
        return _decode(inner[0], value, field=field, key=key, strict=strict)
    if origin is typing.Literal:
        # type() as well as ==: True == 1 and 1.0 == 1 must not pass for each other.
        if not any(type(value) is type(a) and value == a for a in args):
            raise ConfigError(f"expected one of {list(args)}, got {_show(value)}", field=field)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"expected a list, got {_show(value)}", field=field)
        if len(args) == 2 and args[1] is Ellipsis:
            items = [args[0]] * len(value)
        elif len(value) != len(args):
            raise ConfigError(f"expected a list of {len(args)} items, got {len(value)}", field=field)
        else:
            items = list(args)
        return tuple(
            _decode(t, v, field=f"{field}[{i}]", key=key, strict=strict)
            for i, (t, v) in enumerate(zip(items, value, strict=True))
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"expected true or false, got {_show(value)}", field=field)
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"expected a string, got {_show(value)}", field=field)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"expected an integer, got {_show(value)}", field=field)
        lo, hi = NUMBER_BOUNDS.get(key, (1, MAX_INT))
        if not lo <= value <= hi:
            raise ConfigError(f"must be in [{lo}, {hi}], got {value}", field=field)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"expected a number, got {_show(value)}", field=field)
        number = float(value) if abs(value) < 1e300 else math.inf  # int -> float overflows past 1e308
        if not math.isfinite(number):
            raise ConfigError(f"must be finite, got {value!r}", field=field)
        bounds = NUMBER_BOUNDS.get(key)
        if bounds is None and not number > 0:
            raise ConfigError(f"must be > 0, got {number}", field=field)
        if bounds is not None and not bounds[0] <= number <= bounds[1]:
            raise ConfigError(f"must be in [{bounds[0]}, {bounds[1]}], got {number}", field=field)
        return number
    raise TypeError(f"{key}: unsupported annotation {tp!r}")
