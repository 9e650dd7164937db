"""Tri-plane projection and bilinear sampling (REFERENCE-FACTS §2).

EG3D's plane axes are identity, rows (e1, e3, e2) and rows (e3, e1, e2); projecting with
their inverses gives 2-D coordinates plane0 = (x, y), plane1 = (x, z), plane2 = (z, x).
The last was meant to be (z, y); we keep the quirk so EG3D-trained weights stay valid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

PLANE_COORDS: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (2, 0))
"""For each plane, which world axes feed grid coordinate 0 (width) and 1 (height)."""


def project_onto_planes(*, points: Tensor, box_warp: float) -> Tensor:
    """World points ``(N, P, 3)`` -> plane coordinates ``(N, 3, P, 2)`` in [-1, 1] inside the box.

    Points are scaled by 2/box_warp first, so the cube [-box_warp/2, box_warp/2]^3 maps to [-1, 1].
    """
    p = points * (2.0 / box_warp)
    coords = [torch.stack([p[..., a], p[..., b]], dim=-1) for a, b in PLANE_COORDS]
    return torch.stack(coords, dim=1)


def sample_triplane(*, planes: Tensor, points: Tensor, box_warp: float) -> Tensor:
    """Bilinear features of ``points (N, P, 3)`` from ``planes (N, 3, C, H, W)`` -> ``(N, 3, P, C)``.

    grid_sample with zero padding and align_corners=False: grid component 0 indexes the
    width (columns), component 1 the height (rows).
    """
    n, three, c, h, w = planes.shape
    if three != 3:
        raise ValueError(f"planes must be (N, 3, C, H, W), got {tuple(planes.shape)}")
    if points.ndim != 3 or points.shape[0] != n or points.shape[2] != 3:
        raise ValueError(f"points must be ({n}, P, 3), got {tuple(points.shape)}")
    p = points.shape[1]
    grid = project_onto_planes(points=points, box_warp=box_warp).reshape(n * 3, 1, p, 2)
    out = F.grid_sample(
        planes.reshape(n * 3, c, h, w), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )  # (N*3, C, 1, P)
    return out.reshape(n, 3, c, p).transpose(2, 3)
