"""The trained 3D core as one object and one bundle: generator, encoder, W encoder, shared decoder.

Bundle kind ``tricam-core`` (see :mod:`engine.bundle` for the format). Components:

=====================  ==========================================================
``mapping``            generator mapping (z, frontal c -> W), ``w_avg`` included
``backbone``           StyleGAN2 tri-plane backbone
``decoder``            the shared OSG decoder + semantic head (encoder and generator)
``superres``           generator super-resolution
``encoder``            single-image tri-plane encoder (:class:`TriplaneEncoder`)
``w_encoder``          image -> W+ (:class:`WEncoder`)
``attribute_embedding``  synthetic attribute record -> z (how heads are sampled)
=====================  ==========================================================

``config``: ``generator`` (GeneratorConfig), ``encoder`` (EncoderConfig),
``render_resolution`` (the encoder path's raw render side), ``attribute_dim``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.bundle import (
    MANIFEST,
    Bundle,
    BundleError,
    build_on_meta,
    field_error,
    load_bundle,
    load_state,
    read_manifest,
    save_bundle,
    state_shapes,
)
from engine.camera import LABEL_SIZE
from engine.training.attributes import ATTRIBUTE_DIM, AttributeEmbedding
from engine.triplane.config import (
    ConfigError,
    GeneratorConfig,
    RenderConfig,
    config_from_dict,
    config_to_dict,
)
from engine.triplane.encoder import EncoderConfig, TriplaneEncoder, WEncoder
from engine.triplane.generator import TriplaneGenerator, frontal_conditioning
from engine.triplane.raw import RawImage, render_image

KIND = "tricam-core"
DEFAULT_BUNDLE = Path(__file__).resolve().parent.parent / "assets" / "core-tiny"
"""The bundle shipped in the repository (trained here on synthetic heads)."""


@dataclass
class CoreModel:
    """Everything the trained core can do, on one device."""

    generator: TriplaneGenerator
    encoder: TriplaneEncoder
    w_encoder: WEncoder
    embedding: AttributeEmbedding
    render_resolution: int
    provenance: dict[str, Any]

    @property
    def decoder(self) -> nn.Module:
        return self.generator.decoder

    @property
    def render_config(self) -> RenderConfig:
        return dataclasses.replace(self.generator.config.render, resolution=self.render_resolution)

    @property
    def input_size(self) -> int:
        return self.encoder.config.input_size

    def modules(self) -> dict[str, nn.Module]:
        g = self.generator
        return {"mapping": g.mapping, "backbone": g.backbone, "decoder": g.decoder, "superres": g.superres,
                "encoder": self.encoder, "w_encoder": self.w_encoder, "attribute_embedding": self.embedding}

    def to(self, device: str | torch.device) -> CoreModel:
        for m in self.modules().values():
            m.to(device)
        return self

    def prepare(self, image01: Tensor) -> Tensor:
        """``(N, 3, H, W)`` in [0, 1] (any square size) -> the encoder's input size (area / bilinear)."""
        if image01.ndim != 4 or image01.shape[1] != 3 or image01.shape[2] != image01.shape[3]:
            raise ValueError(f"image must be a square (N, 3, S, S) batch, got {tuple(image01.shape)}")
        s = self.input_size
        if image01.shape[-1] == s:
            return image01
        mode = "area" if image01.shape[-1] > s else "bilinear"
        return F.interpolate(image01, size=(s, s), mode=mode, **({} if mode == "area" else {"align_corners": False}))

    def encode(self, image01: Tensor, camera: Tensor) -> Tensor:
        """Aligned crop ``(N, 3, S, S)`` in [0, 1] + its camera ``(N, 25)`` -> tri-plane ``(N, 3, C, R, R)``."""
        if camera is None:
            raise ValueError("a camera is required: the (N, 25) EG3D label of the crop (engine.faces gives it)")
        if camera.ndim != 2 or camera.shape[1] != LABEL_SIZE:
            raise ValueError(f"camera must be (N, {LABEL_SIZE}), got {tuple(camera.shape)}")
        x = self.prepare(image01)
        return self.encoder(image=x * 2 - 1, camera=camera.to(x.dtype)).planes

    def render(self, planes: Tensor, camera: Tensor, resolution: int | None = None) -> RawImage:
        """Raw render (colour premultiplied in [0, 1], opacity, depth, semantic logits)."""
        return render_image(planes=planes, decoder=self.decoder, config=self.render_config, camera=camera,
                            resolution=resolution or self.render_resolution)

    def reconstruct(self, rgb01: Tensor, camera: Tensor, targets: Tensor, resolution: int) -> RawImage:
        """Encode each item once; render it at its ``k`` target cameras (``targets`` is ``(N*k, 25)``)."""
        planes = self.encode(rgb01, camera)
        k = targets.shape[0] // planes.shape[0]
        return self.render(planes.repeat_interleave(k, dim=0), targets, resolution)

    def ws_from_attributes(self, attributes: Tensor) -> Tensor:
        z = self.embedding(attributes)
        return self.generator.map(z=z, c=frontal_conditioning(z.shape[0], device=z.device, dtype=z.dtype))

    def ws_from_image(self, image01: Tensor) -> Tensor:
        return self.w_encoder(image=self.prepare(image01) * 2 - 1, w_avg=self.generator.mapping.w_avg)


def save_core(directory: str | os.PathLike[str], core: CoreModel, *, preset: str,
              provenance: Mapping[str, Any]) -> dict[str, Any]:
    cfg = {
        "generator": config_to_dict(core.generator.config),
        "encoder": dataclasses.asdict(core.encoder.config),
        "render_resolution": core.render_resolution,
        "attribute_dim": core.embedding.attribute_dim,
        "w_encoder": {"input_size": core.w_encoder.input_size, "num_ws": core.w_encoder.num_ws,
                      "w_dim": core.w_encoder.w_dim},
    }
    return save_bundle(directory, kind=KIND, preset=preset, config=cfg,
                       components={k: m.state_dict() for k, m in core.modules().items()}, provenance=provenance)


@dataclass(frozen=True)
class _WEncoderSizes:
    input_size: int
    num_ws: int
    w_dim: int


@dataclass(frozen=True)
class _CoreConfig:
    """The ``config`` section of a ``tricam-core`` manifest, as :func:`save_core` writes it."""

    generator: GeneratorConfig
    encoder: EncoderConfig
    render_resolution: int
    attribute_dim: int
    w_encoder: _WEncoderSizes


def _parse_config(manifest: Mapping[str, Any], path: Path) -> _CoreConfig:
    """The manifest's config, typed and complete, with the relations between its parts checked."""
    try:
        cfg = config_from_dict(_CoreConfig, manifest["config"], strict=True)
    except ConfigError as e:
        field = e.within("config").field or "config"
        raise BundleError(f"{path}: bad tricam-core config: field {field!r} {e.problem}", field=field, path=path) from e
    g, e_cfg, w = cfg.generator, cfg.encoder, cfg.w_encoder
    # Sizes the weight shapes cannot pin down: the encoder's planes are decoded and rendered with the
    # generator's decoder and render config, and both encoders read the crop prepare() makes.
    relations = (
        ("encoder.plane_channels", e_cfg.plane_channels, "generator.synthesis.plane_channels",
         g.synthesis.plane_channels),
        ("encoder.plane_resolution", e_cfg.plane_resolution, "generator.synthesis.plane_resolution",
         g.synthesis.plane_resolution),
        ("encoder.box_warp", e_cfg.box_warp, "generator.render.box_warp", g.render.box_warp),
        ("w_encoder.w_dim", w.w_dim, "generator.mapping.w_dim", g.mapping.w_dim),
        ("w_encoder.input_size", w.input_size, "encoder.input_size", e_cfg.input_size),
        ("attribute_dim", cfg.attribute_dim, "the synthetic attribute record's size", ATTRIBUTE_DIM),
    )
    for field, value, other, want in relations:
        if value != want:
            raise field_error(path, f"config.{field}", f"is {value} but must equal {other} ({want})")
    return cfg


def _build(cfg: _CoreConfig, provenance: dict[str, Any]) -> CoreModel:
    return CoreModel(
        generator=TriplaneGenerator(cfg.generator),
        encoder=TriplaneEncoder(cfg.encoder),
        w_encoder=WEncoder(num_ws=cfg.w_encoder.num_ws, w_dim=cfg.w_encoder.w_dim, input_size=cfg.w_encoder.input_size),
        embedding=AttributeEmbedding(cfg.generator.mapping.z_dim, cfg.attribute_dim),
        render_resolution=cfg.render_resolution,
        provenance=provenance,
    )


def load_core(directory: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> CoreModel:
    """Build the core a ``tricam-core`` bundle describes and load its weights (validated, strict).

    Raises:
        BundleError: a missing, corrupt or mismatched bundle, named precisely (``field`` is the
            manifest field at fault, e.g. ``config.encoder.low_channels``).
    """
    root = Path(directory) if directory is not None else DEFAULT_BUNDLE
    manifest = read_manifest(root)
    path = root / MANIFEST
    if manifest["kind"] != KIND:
        raise BundleError(f"{root}: bundle kind is {manifest['kind']!r}, expected {KIND!r}", field="kind", path=path)
    cfg = _parse_config(manifest, path)
    # Shapes from a meta-device model: a corrupt config is refused before it can allocate anything.
    meta = build_on_meta(lambda: _build(cfg, {}), path=path)
    if cfg.w_encoder.num_ws != meta.generator.num_ws:
        raise field_error(path, "config.w_encoder.num_ws",
                          f"is {cfg.w_encoder.num_ws} but the generator has {meta.generator.num_ws} ws")
    bundle: Bundle = load_bundle(root, kind=KIND, expected=state_shapes(meta.modules(), path=path))
    core = _build(cfg, dict(manifest["provenance"]))
    for name, m in core.modules().items():
        load_state(m, bundle.components[name], field=f"components.{name}", path=root / f"{name}.safetensors")
        m.eval()
    return core.to(device)
