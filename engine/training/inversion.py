"""Put a photo into the generator's W+ / S space: the W encoder's guess, refined by optimisation.

The W encoder gives a start in one forward pass; :func:`refine_ws` then optimises W+
(optimisation inversion: slower, more faithful) against the photo through the generator's
raw render at the photo's camera, with the photo's border colour as background. The
result's S codes (``generator.affine(ws=...)``) are what SAT3D edits.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from engine.camera import rays
from engine.training.data import border_colour
from engine.triplane.encoder import WEncoder
from engine.triplane.generator import TriplaneGenerator
from engine.triplane.raw import render_rays

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InversionResult:
    ws: Tensor
    """``(N, num_ws, w_dim)`` refined W+."""
    losses: list[float]
    """Photometric loss per step (step 0 = the encoder's guess)."""


def predict_ws(w_encoder: WEncoder, generator: TriplaneGenerator, image01: Tensor) -> Tensor:
    """The W encoder's W+ for ``image01 (N, 3, S, S)`` in [0, 1]."""
    if image01.shape[-1] != w_encoder.input_size:
        image01 = torch.nn.functional.interpolate(image01, size=(w_encoder.input_size,) * 2, mode="area")
    with torch.no_grad():
        return w_encoder(image=image01 * 2 - 1, w_avg=generator.mapping.w_avg)


def refine_ws(
    generator: TriplaneGenerator,
    image01: Tensor,
    camera: Tensor,
    ws: Tensor,
    *,
    steps: int = 100,
    lr: float = 0.02,
    rays_per_step: int = 1024,
    seed: int = 0,
) -> InversionResult:
    """Optimise W+ so the generator's render at ``camera`` matches ``image01`` (L1 on random rays)."""
    if image01.ndim != 4 or image01.shape[1] != 3:
        raise ValueError(f"image must be (N, 3, S, S), got {tuple(image01.shape)}")
    n, _, s, _ = image01.shape
    gen = torch.Generator().manual_seed(seed)
    ws = ws.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([ws], lr=lr)
    rcfg = dataclasses.replace(generator.config.render, resolution=s)
    origins, dirs = rays(camera.to(image01.dtype), s)
    target = image01.flatten(2).transpose(1, 2)  # (N, S*S, 3)
    bg = border_colour(image01).reshape(n, 1, 3)
    losses: list[float] = []
    for _ in range(steps + 1):
        idx = torch.randint(0, s * s, (n, min(rays_per_step, s * s)), generator=gen)
        g3 = idx[..., None].expand(-1, -1, 3)
        planes = generator.synthesis(ws=ws)
        out = render_rays(planes=planes, decoder=generator.decoder, config=rcfg,
                          origins=torch.gather(origins, 1, g3), directions=torch.gather(dirs, 1, g3))
        loss = (out.composite(bg) - torch.gather(target, 1, g3)).abs().mean()
        losses.append(float(loss.detach()))
        if len(losses) > steps:
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return InversionResult(ws=ws.detach(), losses=losses)
