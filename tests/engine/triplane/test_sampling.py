from __future__ import annotations

import pytest
import torch

from engine.triplane.sampling import PLANE_COORDS, project_onto_planes, sample_triplane


def test_hand_computed_bilinear_value() -> None:
    # One 2x2 plane; the other two are zero. Mean over planes is the decoder's job, not sampling's.
    planes = torch.zeros(1, 3, 1, 2, 2)
    planes[0, 0, 0] = torch.tensor([[1.0, 2.0], [3.0, 5.0]])  # rows = height (y), cols = width (x)
    # box_warp 2 -> grid = world coords. Plane0 reads (x, y): x=0.25 -> column 0.75, y=-0.25 -> row 0.25
    # (align_corners=False: index = ((g + 1) * size - 1) / 2).
    pts = torch.tensor([[[0.25, -0.25, 0.7]]])
    got = sample_triplane(planes=planes, points=pts, box_warp=2.0)
    top = 0.25 * 1.0 + 0.75 * 2.0
    bottom = 0.25 * 3.0 + 0.75 * 5.0
    expected = 0.75 * top + 0.25 * bottom
    assert got.shape == (1, 3, 1, 1)
    assert got[0, 0, 0, 0].item() == pytest.approx(expected, abs=1e-6)
    assert got[0, 1:].abs().max().item() == 0.0


def _fill_linear(size: int, a: float, b: float, c: float) -> torch.Tensor:
    """Plane whose texel centres hold a*g0 + b*g1 + c (g0 = width coord, g1 = height coord in [-1, 1])."""
    centres = (torch.arange(size) + 0.5) / size * 2 - 1
    g1, g0 = torch.meshgrid(centres, centres, indexing="ij")
    return a * g0 + b * g1 + c


def test_known_functions_sampled_at_random_points_pin_plane_layout() -> None:
    size, box = 32, 1.0
    coef = [(0.7, -0.3, 0.1), (-0.2, 0.9, 0.0), (0.5, 0.4, -0.3)]
    planes = torch.stack([_fill_linear(size, *k) for k in coef])[None, :, None]  # (1, 3, 1, S, S)
    gen = torch.Generator().manual_seed(0)
    lim = (1 - 1 / size) * box / 2  # stay within texel centres where bilinear is exact for linear functions
    pts = (torch.rand(1, 200, 3, generator=gen) * 2 - 1) * lim
    got = sample_triplane(planes=planes, points=pts, box_warp=box)[0, :, :, 0]  # (3, P)
    g = pts[0] * (2 / box)
    x, y, z = g[:, 0], g[:, 1], g[:, 2]
    # EG3D's layout: (x, y), (x, z) and the quirk (z, x) for the third plane.
    pairs = [(x, y), (x, z), (z, x)]
    for i, ((a, b, c), (u, v)) in enumerate(zip(coef, pairs, strict=True)):
        torch.testing.assert_close(got[i], a * u + b * v + c, atol=1e-5, rtol=0)


def test_third_plane_reads_z_then_x_not_y() -> None:
    assert PLANE_COORDS == ((0, 1), (0, 2), (2, 0))
    pts = torch.tensor([[[0.1, 0.2, 0.3]]])
    coords = project_onto_planes(points=pts, box_warp=1.0)[0, :, 0]
    torch.testing.assert_close(coords[2], torch.tensor([0.6, 0.2]))
    # A third plane varying only along its height axis responds to x and ignores y.
    planes = torch.zeros(1, 3, 1, 8, 8)
    planes[0, 2, 0] = torch.arange(8.0)[:, None].expand(8, 8)
    base = sample_triplane(planes=planes, points=pts, box_warp=1.0)[0, 2, 0, 0]
    moved_y = sample_triplane(planes=planes, points=pts + torch.tensor([0.0, 0.15, 0.0]), box_warp=1.0)[
        0, 2, 0, 0
    ]
    moved_x = sample_triplane(planes=planes, points=pts + torch.tensor([0.15, 0.0, 0.0]), box_warp=1.0)[
        0, 2, 0, 0
    ]
    assert moved_y.item() == pytest.approx(base.item(), abs=1e-6)
    assert abs(moved_x.item() - base.item()) > 0.5


def test_outside_the_box_is_zero() -> None:
    planes = torch.ones(1, 3, 2, 4, 4)
    pts = torch.tensor([[[0.0, 0.0, 0.0], [3.0, 3.0, 3.0]]])
    got = sample_triplane(planes=planes, points=pts, box_warp=1.0)
    assert torch.all(got[0, :, 0] == 1.0)
    assert torch.all(got[0, :, 1] == 0.0)


def test_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="planes"):
        sample_triplane(planes=torch.zeros(1, 2, 1, 4, 4), points=torch.zeros(1, 1, 3), box_warp=1.0)
    with pytest.raises(ValueError, match="points"):
        sample_triplane(planes=torch.zeros(1, 3, 1, 4, 4), points=torch.zeros(1, 1, 2), box_warp=1.0)
