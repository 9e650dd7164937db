"""The tri-plane generator: mapping -> backbone -> (renderer + decoder) -> super-resolution.

Two equivalent ways in:

* ``forward(z=..., c=..., camera=...)`` / ``synthesis(ws=...)``: every layer computes its
  S codes from its w;
* ``affine(ws=...) -> s`` then ``synthesis_from_s(s=...)`` / ``render_from_s(s=..., camera=...)``:
  the layers' S codes come from a flat, possibly edited, S vector ``s (N, S)`` laid out by
  :attr:`stylespace`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.camera import orbit_label, rays
from engine.triplane.config import GeneratorConfig
from engine.triplane.decoder import TriplaneDecoder
from engine.triplane.layers import NoiseMode, SynthesisBlock, SynthesisLayer, ToRGB
from engine.triplane.mapping import MappingNetwork
from engine.triplane.renderer import RenderNoise, RenderOutput, VolumeRenderer, to_image
from engine.triplane.stylespace import StyleSpaceTable, build_table
from engine.triplane.superres import SuperResolution
from engine.triplane.synthesis import SynthesisNetwork


@dataclass(frozen=True)
class GeneratorOutput:
    """One render; ``r`` is the neural rendering resolution, ``4r`` the output."""

    image: Tensor
    """``(N, 3, 4r, 4r)`` super-resolved RGB, ~[-1, 1]."""
    image_raw: Tensor
    """``(N, 3, r, r)`` first three marched feature channels."""
    features: Tensor
    """``(N, C, r, r)`` marched features (x2-1)."""
    depth: Tensor
    """``(N, 1, r, r)`` Euclidean depth along each pixel's ray."""
    opacity: Tensor
    """``(N, 1, r, r)`` accumulated opacity."""
    semantics: Tensor
    """``(N, K, r, r)`` marched semantic logits."""


def frontal_conditioning(n: int, *, device: torch.device | None = None, dtype: torch.dtype = torch.float32) -> Tensor:
    """``(n, 25)`` label of the frontal camera (yaw = pitch = 0): the mapping's fixed conditioning."""
    label = torch.as_tensor(orbit_label(0.0, 0.0), dtype=dtype, device=device)
    return label[None].expand(n, -1).contiguous()


class TriplaneGenerator(nn.Module):
    """EG3D-style generator with an exposed S space and a semantic head."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = SynthesisNetwork(config.synthesis, w_dim=config.mapping.w_dim)
        self.num_ws = self.backbone.num_ws
        self.mapping = MappingNetwork(config.mapping, num_ws=self.num_ws)
        self.decoder = TriplaneDecoder(config.decoder, plane_channels=config.synthesis.plane_channels)
        self.superres = SuperResolution(
            config.superres,
            in_channels=config.decoder.feature_channels,
            w_dim=config.mapping.w_dim,
            w_index=self.num_ws - 1,
        )
        self.renderer = VolumeRenderer(config.render)
        self.stylespace: StyleSpaceTable = build_table(
            self.backbone.stylespace_rows() + self.superres.stylespace_rows()
        )

    def _modulated_layers(self) -> list[SynthesisLayer | ToRGB]:
        """Modulated layers (each reads its S codes) in S-table order."""
        layers: list[SynthesisLayer | ToRGB] = []
        for block in [*self.backbone.blocks, self.superres.block0, self.superres.block1]:
            assert isinstance(block, SynthesisBlock)
            layers += [layer for _, layer in block.modulated_layers()]
        return layers

    def map(
        self,
        *,
        z: Tensor,
        c: Tensor | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> Tensor:
        """``z (N, z_dim)``, ``c (N, 25)`` -> ws ``(N, num_ws, w_dim)``."""
        return self.mapping(z=z, c=c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)

    def affine(self, *, ws: Tensor) -> Tensor:
        """ws ``(N, num_ws, w_dim)`` -> S codes s ``(N, stylespace.size)`` (every layer's ``A(w)``)."""
        parts = [
            layer.affine(ws[:, sl.w_index])
            for sl, layer in zip(self.stylespace.slices, self._modulated_layers(), strict=True)
        ]
        return torch.cat(parts, dim=1)

    def synthesis(self, *, ws: Tensor, noise_mode: NoiseMode = "const") -> Tensor:
        """ws ``(N, num_ws, w_dim)`` -> planes ``(N, 3, C, R, R)``."""
        return self.backbone(ws=ws, noise_mode=noise_mode)

    def synthesis_from_s(self, *, s: Tensor, noise_mode: NoiseMode = "const") -> Tensor:
        """S codes s ``(N, S)`` (the full S vector; super-resolution entries are ignored) -> planes."""
        return self.backbone.forward_s(s_codes=self._backbone_s_codes(s), noise_mode=noise_mode)

    def _backbone_s_codes(self, s: Tensor) -> list[Tensor]:
        if s.ndim != 2 or s.shape[1] != self.stylespace.size:
            raise ValueError(f"s must be (N, {self.stylespace.size}), got {tuple(s.shape)}")
        return [s[:, sl.offset : sl.stop] for sl in self.stylespace.component_slices("synthesis")]

    def _superres_s_codes(self, s: Tensor) -> list[Tensor]:
        return [s[:, sl.offset : sl.stop] for sl in self.stylespace.component_slices("superres")]

    def render_planes(
        self,
        *,
        planes: Tensor,
        camera: Tensor,
        sr_s_codes: list[Tensor],
        noise: RenderNoise | None = None,
        sr_noise_mode: NoiseMode = "none",
    ) -> GeneratorOutput:
        """Render tri-planes from ``camera (N, 25)`` and super-resolve with the per-layer SR S codes.

        ``noise=None`` draws EG3D-style random jitter from the global RNG; pass
        :meth:`RenderNoise.deterministic` for repeatable output.
        """
        cfg = self.config.render
        n = planes.shape[0]
        origins, dirs = rays(camera.to(planes.dtype), cfg.resolution)
        if noise is None:
            noise = RenderNoise.random(cfg, batch=n, device=planes.device)
        out: RenderOutput = self.renderer(
            planes=planes, decoder=self.decoder, origins=origins, directions=dirs, noise=noise
        )
        r = cfg.resolution
        features = to_image(out.features, resolution=r)
        rgb = features[:, :3]
        image = self.superres.forward_s(
            rgb=rgb, features=features, s_codes=sr_s_codes, noise_mode=sr_noise_mode
        )
        return GeneratorOutput(
            image=image,
            image_raw=rgb,
            features=features,
            depth=to_image(out.depth, resolution=r),
            opacity=to_image(out.opacity, resolution=r),
            semantics=to_image(out.semantics, resolution=r),
        )

    def render_from_s(
        self,
        *,
        s: Tensor,
        camera: Tensor,
        noise: RenderNoise | None = None,
        noise_mode: NoiseMode = "const",
        sr_noise_mode: NoiseMode = "none",
    ) -> GeneratorOutput:
        """(Possibly edited) S codes ``s (N, S)`` rendered from ``camera (N, 25)``."""
        planes = self.synthesis_from_s(s=s, noise_mode=noise_mode)
        return self.render_planes(
            planes=planes,
            camera=camera,
            sr_s_codes=self._superres_s_codes(s),
            noise=noise,
            sr_noise_mode=sr_noise_mode,
        )

    def render(
        self,
        *,
        ws: Tensor,
        camera: Tensor,
        noise: RenderNoise | None = None,
        noise_mode: NoiseMode = "const",
        sr_noise_mode: NoiseMode = "none",
    ) -> GeneratorOutput:
        """ws ``(N, num_ws, w_dim)`` rendered from ``camera (N, 25)``; layers compute their own S codes."""
        planes = self.synthesis(ws=ws, noise_mode=noise_mode)
        w = ws[:, -1]
        sr_s_codes = [layer.affine(w) for layer in self._modulated_layers()[-6:]]
        return self.render_planes(
            planes=planes, camera=camera, sr_s_codes=sr_s_codes, noise=noise, sr_noise_mode=sr_noise_mode
        )

    def forward(
        self,
        *,
        z: Tensor,
        camera: Tensor,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise: RenderNoise | None = None,
        noise_mode: NoiseMode = "const",
        sr_noise_mode: NoiseMode = "none",
    ) -> GeneratorOutput:
        """z ``(N, z_dim)`` -> render from ``camera (N, 25)``.

        The mapping is conditioned on ``c``, which defaults to the fixed frontal camera (as
        EG3D does at inference), so the identity does not drift as the render camera moves.
        ``noise_mode`` drives the backbone's per-pixel noise, ``sr_noise_mode`` the
        super-resolution's (EG3D FFHQ: 'none').
        """
        ws = self.map(
            z=z,
            c=frontal_conditioning(z.shape[0], device=z.device, dtype=z.dtype) if c is None else c,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
        )
        return self.render(
            ws=ws, camera=camera, noise=noise, noise_mode=noise_mode, sr_noise_mode=sr_noise_mode
        )
