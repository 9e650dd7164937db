from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.camera import LOOKAT, orbit_label, rays
from engine.triplane.config import RenderConfig
from engine.triplane.decoder import DecoderOutput
from engine.triplane.renderer import (
    RenderNoise,
    VolumeRenderer,
    importance_depths,
    ray_march,
    sample_pdf,
    stratified_depths,
)


def raw_for_sigma(sigma: float) -> float:
    """Raw density whose softplus(raw - 1) equals sigma."""
    return 1.0 + math.log(math.expm1(sigma))


class ConstantField:
    """A decoder stub: the same raw density, features and logits at every point."""

    def __init__(self, raw: float, features: int = 4, classes: int = 3) -> None:
        self.raw, self.features, self.classes = raw, features, classes

    def __call__(self, *, features: torch.Tensor) -> DecoderOutput:
        n, _, p, _ = features.shape
        return DecoderOutput(
            raw_density=torch.full((n, p, 1), self.raw),
            features=torch.full((n, p, self.features), 0.75),
            semantics=torch.arange(self.classes, dtype=torch.float32).expand(n, p, -1),
        )


CFG = RenderConfig(resolution=4, depth_samples=12, importance_samples=12, ray_start=2.25, ray_end=3.3)


def render_constant(raw: float) -> tuple[torch.Tensor, ...]:
    labels = torch.tensor(np.stack([orbit_label(0, 0), orbit_label(25, -10)]), dtype=torch.float32)
    o, d = rays(labels, CFG.resolution)
    out = VolumeRenderer(CFG)(
        planes=torch.zeros(2, 3, 2, 4, 4),
        decoder=ConstantField(raw),
        origins=o,
        directions=d,
        noise=RenderNoise.deterministic(CFG, batch=2),
    )
    return out.features, out.semantics, out.depth, out.opacity


def test_empty_space_has_zero_opacity() -> None:
    feats, sem, depth, opacity = render_constant(-60.0)
    assert opacity.abs().max().item() < 1e-12
    assert feats.shape == (2, 16, 4) and sem.shape == (2, 16, 3)
    # Zero weights: features are 0*2-1, depth falls back to the far end (NaN -> inf -> clamp).
    torch.testing.assert_close(feats, torch.full_like(feats, -1.0))
    torch.testing.assert_close(depth, torch.full_like(depth, CFG.ray_end))


def test_uniform_medium_through_full_renderer() -> None:
    sigma = 1.7
    feats, sem, _, opacity = render_constant(raw_for_sigma(sigma))
    # Deterministic samples span exactly [ray_start, ray_end].
    expected = 1 - math.exp(-sigma * (CFG.ray_end - CFG.ray_start))
    torch.testing.assert_close(opacity, torch.full_like(opacity, expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(feats, ((0.75 * opacity) * 2 - 1).expand_as(feats))  # x2-1: features only
    torch.testing.assert_close(sem, opacity * torch.arange(3.0))  # logits marched, not rescaled


@pytest.mark.parametrize(("sigma", "thickness"), [(0.8, 0.4), (6.0, 0.25), (20.0, 0.1)])
def test_slab_opacity_and_depth(sigma: float, thickness: float) -> None:
    start, slab_at = 2.0, 2.3
    depths = torch.linspace(start, 3.0, 4001)
    inside = (depths >= slab_at) & (depths <= slab_at + thickness)
    raw = torch.where(inside, torch.tensor(raw_for_sigma(sigma)), torch.tensor(-60.0))
    out = ray_march(
        colors=torch.zeros(1, 1, 4001, 1), raw_density=raw.view(1, 1, -1, 1), depths=depths.view(1, 1, -1, 1)
    )
    opacity = 1 - math.exp(-sigma * thickness)
    # E[t] of first hits inside a homogeneous slab starting at slab_at.
    depth = slab_at + 1 / sigma - thickness * math.exp(-sigma * thickness) / opacity
    assert out.opacity.item() == pytest.approx(opacity, abs=2e-3)
    assert out.depth.item() == pytest.approx(depth, abs=2e-3)


def test_slab_exact_when_samples_bound_it() -> None:
    sigma, d = 3.0, 0.5
    depths = torch.linspace(2.5, 2.5 + d, 7).view(1, 1, -1, 1)
    raw = torch.full_like(depths, raw_for_sigma(sigma))
    out = ray_march(colors=torch.ones_like(depths), raw_density=raw, depths=depths)
    assert out.opacity.item() == pytest.approx(1 - math.exp(-sigma * d), abs=1e-6)
    assert out.color.item() == pytest.approx(out.opacity.item(), abs=1e-6)


@pytest.mark.parametrize(("yaw", "pitch", "roll"), [(0, 0, 0), (35, -20, 0), (-60, 15, 10), (170, 40, -5)])
def test_centre_ray_passes_through_look_at(yaw: float, pitch: float, roll: float) -> None:
    label = torch.tensor(orbit_label(yaw, pitch, roll), dtype=torch.float64)[None]
    o, d = rays(label, 1)  # one pixel: the principal point
    to_pivot = torch.tensor(LOOKAT, dtype=torch.float64) - o[0, 0]
    distance = torch.linalg.cross(to_pivot, d[0, 0]).norm()
    assert distance.item() < 1e-9
    assert torch.dot(to_pivot, d[0, 0]).item() > 0  # in front of the camera


def test_stratified_depths() -> None:
    cfg = RenderConfig(depth_samples=5, ray_start=2.0, ray_end=3.0)
    torch.testing.assert_close(
        stratified_depths(jitter=torch.zeros(1, 1, 5), config=cfg)[0, 0, :, 0], torch.linspace(2, 3, 5)
    )
    jittered = stratified_depths(jitter=torch.full((1, 1, 5), 0.5), config=cfg)[0, 0, :, 0]
    torch.testing.assert_close(jittered, torch.linspace(2, 3, 5) + 0.125)


def _reference_pdf(bins: torch.Tensor, weights: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The same inverse CDF with torch.searchsorted (what EG3D uses)."""
    w = weights + 1e-5
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)
    idx = torch.searchsorted(cdf, u, right=True)
    below = torch.clamp_min(idx - 1, 0)
    above = torch.clamp_max(idx, weights.shape[1])
    cg = torch.stack([cdf.gather(1, below), cdf.gather(1, above)], -1)
    bg = torch.stack([bins.gather(1, below), bins.gather(1, above)], -1)
    denom = cg[..., 1] - cg[..., 0]
    denom = torch.where(denom < 1e-5, torch.ones_like(denom), denom)
    return bg[..., 0] + (u - cg[..., 0]) / denom * (bg[..., 1] - bg[..., 0])


def test_sample_pdf_matches_searchsorted() -> None:
    gen = torch.Generator().manual_seed(3)
    bins = torch.sort(torch.rand(64, 11, generator=gen) * 3, dim=1).values
    weights = torch.rand(64, 9, generator=gen) ** 4
    weights[::7] = 0  # degenerate rows
    u = torch.rand(64, 20, generator=gen)
    u[0, :3] = torch.tensor([0.0, 0.5, 0.999999])
    torch.testing.assert_close(sample_pdf(bins=bins, weights=weights, u=u), _reference_pdf(bins, weights, u))


def test_importance_samples_concentrate_on_the_surface() -> None:
    depths = torch.linspace(2.0, 3.0, 21).view(1, 1, 21, 1)
    weights = torch.zeros(1, 1, 20, 1)
    weights[0, 0, 10] = 1.0  # all mass in the interval [2.5, 2.55]
    u = torch.rand(1, 1, 200, generator=torch.Generator().manual_seed(0))
    fine = importance_depths(depths=depths, weights=weights, u=u)[0, 0, :, 0]
    # Smoothing spreads mass to the neighbouring intervals; +0.01 keeps a floor elsewhere.
    near = ((fine > 2.4) & (fine < 2.65)).float().mean().item()
    assert near > 0.8
    assert fine.min() >= 2.025 - 1e-6 and fine.max() <= 2.975 + 1e-6


def test_render_noise_shapes_are_checked() -> None:
    o, d = rays(torch.tensor(orbit_label(0, 0), dtype=torch.float32)[None], CFG.resolution)
    bad = RenderNoise(jitter=torch.zeros(1, 16, 3), importance_u=torch.zeros(1, 16, CFG.importance_samples))
    with pytest.raises(ValueError, match="jitter"):
        VolumeRenderer(CFG)(
            planes=torch.zeros(1, 3, 2, 4, 4), decoder=ConstantField(0.0), origins=o, directions=d, noise=bad
        )
