"""Single-image tri-plane encoder (Live3D / 3DPE shape, sized for a CPU) and a W-code encoder.

Aligned crop + its EG3D camera -> tri-plane ``(N, 3, C, R, R)`` that the shared
:class:`~engine.triplane.decoder.TriplaneDecoder` and volume renderer turn into any view.

::

    image (N,3,S,S) + pixel coords ─ E_low (geometry U-Net) ─ depth, alpha logit, geometry features
                    └──────────────── E_high (appearance, full resolution, shallow) ─ appearance features
    lift: every plane cell -> K points along the plane's normal -> project into the input camera
          -> sample [geometry, appearance, RGB, depth, alpha]; weight each point by how close its
          ray distance is to the predicted surface depth there (a soft "visible surface" pick)
    E_final: per-plane fusion U-Net (weights shared, plane id as input) -> tri-plane

What differs from Live3D (REFERENCE-FACTS §11), on purpose: Live3D learns the 2D->3D lift
implicitly with transformers at 256^2-512^2; here the lift is explicit geometry (projection
into the known camera, gated by a supervised depth map), which a few thousand CPU steps can
train. E_low/E_high keep their roles (geometry vs. high-resolution appearance), and
E_final fuses them as Live3D's EncoderFinal does.

:class:`WEncoder` maps an image to the generator's W+ codes (``(N, num_ws, w_dim)``) so a
photo can enter S space; :func:`engine.training.inversion.refine_ws` refines it by
optimisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.camera import LABEL_SIZE, rays
from engine.triplane.sampling import PLANE_COORDS


@dataclass(frozen=True)
class EncoderConfig:
    """Sizes of :class:`TriplaneEncoder` (``tiny`` defaults; scale up on a GPU)."""

    input_size: int = 64
    """Side of the aligned crop the encoder reads (crops of other sizes are resized)."""
    plane_resolution: int = 64
    """Side R of each output plane (must match the generator's planes)."""
    plane_channels: int = 16
    """Channels C per plane (must match the shared decoder)."""
    box_warp: float = 1.0
    """Side of the cube the tri-plane spans (EG3D: 1)."""
    lift_points: int = 16
    """K points per plane cell along the plane's normal, spread over the box."""
    surface_sigma: float = 0.04
    """Width (world units) of the soft pick of the point nearest the predicted surface."""
    low_channels: tuple[int, int, int] = (32, 64, 96)
    """E_low U-Net widths at S, S/2, S/4."""
    geometry_features: int = 32
    """Geometry feature channels E_low hands to the lift."""
    high_channels: int = 32
    """E_high appearance feature channels (full resolution)."""
    fuse_channels: tuple[int, int] = (48, 64)
    """E_final widths at R and R/2."""


LIFT_EXTRA = 3 + 1 + 1 + 3
"""Per-cell channels besides features: RGB, depth, alpha logit, then surface offset, behind-surface
fraction and the picked point's coordinate along the plane's normal."""
IMAGE_INPUTS = 3 + 2 + 3
"""Encoder input channels: RGB, pixel coordinates, world ray direction (so E_low knows the camera)."""


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2))


class _Res(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(ch, ch, 3, 1, 1)
        self.b = nn.Conv2d(ch, ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.b(F.leaky_relu(self.a(F.leaky_relu(x, 0.2)), 0.2))


class _Up(nn.Module):
    """Bilinear x2, concat the skip, conv."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = _conv(cin + cskip, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


@dataclass(frozen=True)
class EncoderOutput:
    planes: Tensor
    """``(N, 3, C, R, R)`` tri-plane."""
    depth: Tensor
    """``(N, 1, S, S)`` E_low's Euclidean depth along each input pixel's ray."""
    alpha_logit: Tensor
    """``(N, 1, S, S)`` E_low's foreground logit."""


DEPTH_CENTRE, DEPTH_RANGE = 2.7, 0.7
"""Predicted depth = centre + range * tanh(x): the cube [-0.5, 0.5]^3 seen from radius 2.7."""


class TriplaneEncoder(nn.Module):
    """Aligned crop ``(N, 3, S, S)`` in [-1, 1] + camera ``(N, 25)`` -> tri-plane."""

    cell_points: Tensor
    normal_t: Tensor

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        c0, c1, c2 = config.low_channels
        # E_low: geometry U-Net.
        self.low_in = _conv(IMAGE_INPUTS, c0)
        self.low_d1 = _conv(c0, c1, 2)
        self.low_d2 = _conv(c1, c2, 2)
        self.low_mid = nn.Sequential(_Res(c2), _Res(c2))
        self.low_u1 = _Up(c2, c1, c1)
        self.low_u2 = _Up(c1, c0, c0)
        self.low_out = nn.Conv2d(c0, config.geometry_features + 2, 3, 1, 1)
        # E_high: shallow, full-resolution appearance.
        self.high = nn.Sequential(_conv(IMAGE_INPUTS, config.high_channels), _conv(config.high_channels, config.high_channels))
        # E_final: per-plane fusion U-Net; plane id one-hot and the cell's coordinates as inputs.
        lift_ch = config.geometry_features + config.high_channels + LIFT_EXTRA
        f0, f1 = config.fuse_channels
        self.fuse_in = _conv(lift_ch + 3 + 2, f0)
        self.fuse_down = _conv(f0, f1, 2)
        self.fuse_mid = nn.Sequential(_Res(f1), _Res(f1))
        self.fuse_up = _Up(f1, f0, f0)
        self.fuse_out = nn.Sequential(_conv(f0, f0), nn.Conv2d(f0, config.plane_channels, 3, 1, 1))
        # A linear path from the lifted pixels straight to the planes keeps their detail (the U-Net smooths).
        self.fuse_skip = nn.Conv2d(lift_ch, config.plane_channels, 1)
        self.register_buffer("cell_points", self._cell_points(), persistent=False)
        half = config.box_warp / 2
        t = (torch.arange(config.lift_points, dtype=torch.float32) + 0.5) / config.lift_points * 2 * half - half
        self.register_buffer("normal_t", t, persistent=False)

    def _cell_points(self) -> Tensor:
        """``(3, R*R, K, 3)`` world points of every plane cell's K normal samples."""
        cfg = self.config
        r, k, half = cfg.plane_resolution, cfg.lift_points, cfg.box_warp / 2
        g = ((torch.arange(r, dtype=torch.float32) * 2 + 1) / r - 1) * half  # cell centres
        rows, cols = torch.meshgrid(g, g, indexing="ij")
        t = (torch.arange(k, dtype=torch.float32) + 0.5) / k * 2 * half - half
        out = torch.zeros(3, r * r, k, 3)
        for p, (a, b) in enumerate(PLANE_COORDS):
            normal = ({0, 1, 2} - {a, b}).pop()
            out[p, :, :, a] = cols.reshape(-1, 1)  # grid component 0 = width = columns
            out[p, :, :, b] = rows.reshape(-1, 1)
            out[p, :, :, normal] = t
        return out

    @staticmethod
    def coords(n: int, size: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``(N, 2, S, S)`` pixel-centre coordinates in [-1, 1] (Live3D feeds pixel indices; normalised here)."""
        g = (torch.arange(size, device=device, dtype=dtype) * 2 + 1) / size - 1
        v, u = torch.meshgrid(g, g, indexing="ij")
        return torch.stack([u, v])[None].expand(n, -1, -1, -1)

    def check_inputs(self, image: Tensor, camera: Tensor) -> None:
        s = self.config.input_size
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[2:] != (s, s):
            raise ValueError(f"image must be (N, 3, {s}, {s}) in [-1, 1], got {tuple(image.shape)}")
        if camera.ndim != 2 or camera.shape != (image.shape[0], LABEL_SIZE):
            raise ValueError(f"camera must be ({image.shape[0]}, {LABEL_SIZE}), got {tuple(camera.shape)}")
        if not torch.isfinite(camera).all():
            raise ValueError("camera has non-finite values")

    def forward(self, *, image: Tensor, camera: Tensor) -> EncoderOutput:
        self.check_inputs(image, camera)
        cfg = self.config
        n, _, s, _ = image.shape
        _, dirs = rays(camera.to(image.dtype), s)
        dirs = dirs.transpose(1, 2).reshape(n, 3, s, s)
        x = torch.cat([image, self.coords(n, s, image.device, image.dtype), dirs], dim=1)
        e0 = self.low_in(x)
        e1 = self.low_d1(e0)
        e2 = self.low_mid(self.low_d2(e1))
        d = self.low_u2(self.low_u1(e2, e1), e0)
        low = self.low_out(d)
        geo = low[:, : cfg.geometry_features]
        depth = DEPTH_CENTRE + DEPTH_RANGE * torch.tanh(low[:, -2:-1])
        alpha_logit = low[:, -1:]
        high = self.high(x)
        image_feats = torch.cat([geo, high, image, depth, alpha_logit], dim=1)
        lifted = self.lift(image_feats, depth, camera)  # (N, 3, L, R, R)
        r = cfg.plane_resolution
        plane_id = torch.eye(3, device=image.device, dtype=image.dtype)[None, :, :, None, None]
        cell = self.coords(1, r, image.device, image.dtype)[:, None].expand(n, 3, 2, r, r)
        z = torch.cat([lifted, plane_id.expand(n, 3, 3, r, r), cell], dim=2).reshape(n * 3, -1, r, r)
        f0 = self.fuse_in(z)
        f1 = self.fuse_mid(self.fuse_down(f0))
        planes = self.fuse_out(self.fuse_up(f1, f0)) + self.fuse_skip(lifted.reshape(n * 3, -1, r, r))
        planes = planes.reshape(n, 3, cfg.plane_channels, r, r)
        return EncoderOutput(planes=planes, depth=depth, alpha_logit=alpha_logit)

    def lift(self, feats: Tensor, depth: Tensor, camera: Tensor) -> Tensor:
        """Image features ``(N, F, S, S)`` -> per-cell features ``(N, 3, F + 3, R, R)``."""
        cfg = self.config
        n, f = feats.shape[:2]
        r, k = cfg.plane_resolution, cfg.lift_points
        pts = self.cell_points.to(feats.dtype)  # (3, R*R, K, 3)
        c2w = camera[:, :16].reshape(n, 4, 4)
        intr = camera[:, 16:].reshape(n, 3, 3)
        rot, origin = c2w[:, :3, :3], c2w[:, :3, 3]
        rel = pts[None] - origin[:, None, None, None, :]  # (N, 3, RR, K, 3)
        cam = torch.einsum("nji,npmkj->npmki", rot, rel)  # R^T (p - o)
        zc = cam[..., 2:3].clamp(min=1e-3)
        uvw = torch.einsum("nij,npmkj->npmki", intr, cam / zc)
        grid = uvw[..., :2] * 2 - 1  # (N, 3, RR, K, 2)
        # Pick the visible-surface point first from the depth channel alone (cheap, K points), then
        # sample the full feature stack once at the weighted pick: K times less work than
        # sampling every feature at every point, with the same result when the pick is sharp.
        surface = F.grid_sample(depth, grid.reshape(n, 3 * r * r * k, 1, 2), mode="bilinear",
                                padding_mode="border", align_corners=False).reshape(n, 3, r * r, k)
        ray_dist = rel.norm(dim=-1)  # (N, 3, RR, K)
        offset = ray_dist - surface  # > 0: behind the visible surface
        inside = ((grid[..., 0].abs() <= 1) & (grid[..., 1].abs() <= 1)).to(feats.dtype)
        w = torch.softmax(-((offset / cfg.surface_sigma) ** 2), dim=-1) * inside
        # NaN grid coordinates make grid_sample read out of bounds on CPU (a crash, not an error).
        pick = torch.nan_to_num((w[..., None] * grid).sum(dim=3), nan=0.0, posinf=2.0, neginf=-2.0)
        picked = F.grid_sample(feats, pick.reshape(n, 3 * r * r, 1, 2), mode="bilinear",
                               padding_mode="border", align_corners=False).reshape(n, f, 3, r * r)
        picked = picked.permute(0, 2, 1, 3) * w.sum(-1)[:, :, None]
        near = (w * offset).sum(-1)[:, :, None]
        behind = (torch.sigmoid(offset / cfg.surface_sigma) * inside).mean(-1)[:, :, None]
        normal_t = (self.normal_t.to(feats.dtype) * w).sum(-1)[:, :, None] * (2 / cfg.box_warp)
        out = torch.cat([picked, near, behind, normal_t], dim=2)
        return out.reshape(n, 3, f + 3, r, r)


class WEncoder(nn.Module):
    """Image ``(N, 3, S, S)`` in [-1, 1] -> W+ codes ``(N, num_ws, w_dim)`` of a generator.

    Predicts offsets from the generator's mean ``w_avg`` (as pSp/TriPlaneNet add theirs to the
    latent average), so an untrained head starts at the average face.
    """

    def __init__(self, *, num_ws: int, w_dim: int, input_size: int = 64, width: int = 32) -> None:
        super().__init__()
        self.num_ws, self.w_dim, self.input_size = num_ws, w_dim, input_size
        chans = [3, width, width * 2, width * 3, width * 4]
        layers: list[nn.Module] = []
        for a, b in zip(chans[:-1], chans[1:], strict=True):
            layers += [_conv(a, b, 2), _conv(b, b)]
        self.trunk = nn.Sequential(*layers)
        self.hidden = nn.Linear(chans[-1] * 2, 256)
        self.out = nn.Linear(256, num_ws * w_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, *, image: Tensor, w_avg: Tensor) -> Tensor:
        s = self.input_size
        if image.ndim != 4 or image.shape[1] != 3 or image.shape[2:] != (s, s):
            raise ValueError(f"image must be (N, 3, {s}, {s}), got {tuple(image.shape)}")
        h = self.trunk(image)
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        delta = self.out(F.leaky_relu(self.hidden(pooled), 0.2)).reshape(-1, self.num_ws, self.w_dim)
        return w_avg.reshape(1, 1, -1) + delta
