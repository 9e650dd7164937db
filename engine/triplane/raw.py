"""Render a tri-plane's raw (neural) image at any resolution, or at chosen rays.

The encoder path renders the raw RGB, opacity, depth and semantics directly at the
resolution it is judged at (64^2 for the tiny core) instead of going through the
generator's super-resolution, which is tied to the generator's own S codes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from engine.camera import rays
from engine.triplane.config import RenderConfig
from engine.triplane.decoder import PointDecoder
from engine.triplane.renderer import RenderNoise, VolumeRenderer, to_image


@dataclass(frozen=True)
class RayRender:
    """Per-ray outputs: ``(N, M, ch)``; colour in [0, 1] *premultiplied* by opacity."""

    color: Tensor
    opacity: Tensor
    depth: Tensor
    semantics: Tensor

    def composite(self, background: Tensor) -> Tensor:
        """Colour over a background ``(N, 1|M, 3)`` in [0, 1]."""
        return self.color + (1 - self.opacity) * background


@dataclass(frozen=True)
class RawImage:
    """Image outputs ``(N, ch, R, R)``; ``color`` premultiplied, in [0, 1]."""

    color: Tensor
    opacity: Tensor
    depth: Tensor
    semantics: Tensor

    def composite(self, background: Tensor) -> Tensor:
        """Colour over a background ``(N, 3, 1|R, 1|R)`` in [0, 1]."""
        return self.color + (1 - self.opacity) * background


def render_rays(
    *,
    planes: Tensor,
    decoder: PointDecoder,
    config: RenderConfig,
    origins: Tensor,
    directions: Tensor,
    noise: RenderNoise | None = None,
    deterministic: bool = False,
) -> RayRender:
    """Render ``M`` chosen rays per item; ``noise`` None draws random jitter (or the fixed strata)."""
    n, m, _ = origins.shape
    cfg = dataclasses.replace(config, resolution=1)
    if noise is None:
        if deterministic:
            base = RenderNoise.deterministic(cfg, batch=n, device=planes.device)
            noise = RenderNoise(base.jitter.expand(n, m, -1), base.importance_u.expand(n, m, -1))
        else:
            noise = RenderNoise(
                torch.rand(n, m, cfg.depth_samples, device=planes.device),
                torch.rand(n, m, cfg.importance_samples, device=planes.device),
            )
    out = VolumeRenderer(cfg)(planes=planes, decoder=decoder, origins=origins, directions=directions, noise=noise)
    return RayRender(
        color=(out.features[..., :3] + 1) / 2,  # the marcher returns (sum w c) * 2 - 1
        opacity=out.opacity,
        depth=out.depth,
        semantics=out.semantics,
    )


def render_image(
    *,
    planes: Tensor,
    decoder: PointDecoder,
    config: RenderConfig,
    camera: Tensor,
    resolution: int,
    deterministic: bool = True,
    chunk: int = 4096,
) -> RawImage:
    """Full ``resolution^2`` raw render from ``camera (N, 25)``, in chunks of rays."""
    origins, dirs = rays(camera.to(planes.dtype), resolution)
    parts: list[RayRender] = []
    for s in range(0, origins.shape[1], chunk):
        parts.append(render_rays(planes=planes, decoder=decoder, config=config, origins=origins[:, s: s + chunk],
                                 directions=dirs[:, s: s + chunk], deterministic=deterministic))

    def img(name: str) -> Tensor:
        return to_image(torch.cat([getattr(p, name) for p in parts], dim=1), resolution=resolution)

    return RawImage(color=img("color"), opacity=img("opacity"), depth=img("depth"), semantics=img("semantics"))
