"""EG3D camera conventions, shared by pose estimation, the synthetic renderer and the tri-plane renderer.

A camera label is 25 numbers: the 4x4 cam2world matrix (OpenCV axes: x right, y down,
z forward), row-major, then the 3x3 intrinsics normalised by image size, row-major.
The world is y-up; the face looks towards +z; the frontal camera sits at (0, 0, 2.7).

Angles are geometric, in degrees, measured from the frontal camera:

* ``yaw_deg``: azimuth about world +y; positive moves the camera to world +x, which is the
  person's *left* side. A head turned to the person's right shows the camera more of its
  left cheek, so it maps to positive yaw; a head turned to the person's left maps to
  negative yaw, the same sign EG3D's sampler gives the equivalent camera (its h = pi/2 + yaw).
* ``pitch_deg``: elevation of the camera below the horizontal plane; positive moves the
  camera down (world -y), i.e. the camera looks up at the face; a person tilting their chin
  up gives positive pitch. EG3D's ``LookAtPoseSampler`` parameterises elevation differently
  (its v, uniform in cos of the polar angle: sin(pitch) = 2(v - pi/2)/pi), so a sampler
  offset is *not* degrees of tilt; :func:`sampler_origin`, :func:`pitch_from_sampler` and
  :func:`sampler_from_pitch` convert exactly.
* ``roll_deg``: rotation of the camera about its own forward axis (EG3D's sampler has no
  roll; a rolled head is a rolled camera). Positive roll turns the camera's x axis
  towards its y axis (clockwise on screen for the camera, so the face appears rotated
  counter-clockwise in the image).

EG3D places the camera on a sphere of ``radius`` around the *world origin* and points it
at the pivot (0, 0, 0.2); we keep that exactly (only the forward vector uses the pivot), so
labels line up with released checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch

FloatArray = npt.NDArray[np.float64]

RADIUS = 2.7
LOOKAT = (0.0, 0.0, 0.2)
FOCAL = 2985.29 / 700.0  # EG3D FFHQ dataset intrinsics, normalised (~4.2647, FOV 18.837 deg)
LABEL_SIZE = 25


def fov_to_focal(fov_deg: float) -> float:
    """EG3D's FOV_to_intrinsics focal (normalised), including its 1.414 factor."""
    return 1.0 / (math.tan(fov_deg * math.pi / 360.0) * 1.414)


def intrinsics(focal: float = FOCAL, cx: float = 0.5, cy: float = 0.5) -> FloatArray:
    """Normalised 3x3 intrinsics."""
    return np.array([[focal, 0.0, cx], [0.0, focal, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def look_at(origin: npt.ArrayLike, target: npt.ArrayLike = LOOKAT) -> FloatArray:
    """cam2world 4x4 in OpenCV axes for a camera at ``origin`` looking at ``target``, world up +y.

    Mirrors EG3D's create_cam2world_matrix: right = -normalize(up x forward),
    up' = normalize(forward x right), columns (right, up', forward).
    """
    o = np.asarray(origin, dtype=np.float64)
    f = np.asarray(target, dtype=np.float64) - o
    f = f / np.linalg.norm(f)
    up = np.array([0.0, 1.0, 0.0])
    right = -np.cross(up, f)
    n = np.linalg.norm(right)
    if n < 1e-9:
        raise ValueError("camera forward is parallel to world up; look_at is undefined")
    right = right / n
    new_up = np.cross(f, right)
    new_up = new_up / np.linalg.norm(new_up)
    m = np.eye(4, dtype=np.float64)
    m[:3, 0] = right
    m[:3, 1] = new_up
    m[:3, 2] = f
    m[:3, 3] = o
    return m


def sampler_origin(h: float, v: float, radius: float = RADIUS) -> FloatArray:
    """Camera position of EG3D's LookAtPoseSampler for its (h, v) in radians (frontal pi/2, pi/2)."""
    v = min(max(v, 1e-5), math.pi - 1e-5)
    phi = math.acos(1.0 - 2.0 * v / math.pi)
    return np.array(
        [
            radius * math.sin(phi) * math.cos(math.pi - h),
            radius * math.cos(phi),
            radius * math.sin(phi) * math.sin(math.pi - h),
        ]
    )


def pitch_from_sampler(v_offset_deg: float) -> float:
    """EG3D sampler offset (v - pi/2, in degrees) → geometric pitch in degrees."""
    x = 2.0 * math.radians(v_offset_deg) / math.pi
    return math.degrees(math.asin(max(-1.0, min(1.0, x))))


def sampler_from_pitch(pitch_deg: float) -> float:
    """Geometric pitch in degrees → EG3D sampler offset (v - pi/2, in degrees)."""
    return math.degrees(math.pi / 2 * math.sin(math.radians(pitch_deg)))


def orbit_origin(yaw_deg: float, pitch_deg: float, radius: float = RADIUS) -> FloatArray:
    """Camera position on the sphere of ``radius`` around the world origin (EG3D's placement)."""
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    # Same point as sampler_origin(pi/2 + yaw, pi/2 + sampler_from_pitch(pitch)), in closed form.
    return radius * np.array([math.cos(pitch) * math.sin(yaw), -math.sin(pitch), math.cos(pitch) * math.cos(yaw)])


def roll_matrix(roll_deg: float) -> FloatArray:
    """4x4 rotation about the camera's own z (forward) axis, applied as cam2world @ R."""
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    r = np.eye(4, dtype=np.float64)
    r[0, 0], r[0, 1], r[1, 0], r[1, 1] = c, -s, s, c
    return r


def orbit_cam2world(
    yaw_deg: float,
    pitch_deg: float,
    roll_deg: float = 0.0,
    radius: float = RADIUS,
    lookat: Sequence[float] = LOOKAT,
) -> FloatArray:
    """cam2world of an EG3D orbit camera, with an optional roll about the view axis."""
    m = look_at(orbit_origin(yaw_deg, pitch_deg, radius), lookat)
    if roll_deg:
        m = m @ roll_matrix(roll_deg)
    return m


def make_label(cam2world: FloatArray, k: FloatArray | None = None) -> FloatArray:
    """Pack cam2world (4x4) and normalised intrinsics (3x3) into EG3D's 25-number label."""
    if cam2world.shape != (4, 4):
        raise ValueError(f"cam2world must be 4x4, got {cam2world.shape}")
    k = intrinsics() if k is None else k
    if k.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got {k.shape}")
    return np.concatenate([cam2world.reshape(-1), k.reshape(-1)]).astype(np.float64)


def split_label(label: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Inverse of make_label."""
    a = np.asarray(label, dtype=np.float64)
    if a.shape != (LABEL_SIZE,):
        raise ValueError(f"camera label must have {LABEL_SIZE} numbers, got shape {a.shape}")
    return a[:16].reshape(4, 4), a[16:].reshape(3, 3)


def orbit_label(
    yaw_deg: float,
    pitch_deg: float,
    roll_deg: float = 0.0,
    radius: float = RADIUS,
    focal: float = FOCAL,
) -> FloatArray:
    """25-number label of an orbit camera: the common way to ask for a view."""
    return make_label(orbit_cam2world(yaw_deg, pitch_deg, roll_deg, radius), intrinsics(focal))


@dataclass(frozen=True)
class OrbitAngles:
    yaw_deg: float
    pitch_deg: float
    roll_deg: float
    radius: float


def angles_from_cam2world(cam2world: FloatArray) -> OrbitAngles:
    """Recover (yaw, pitch, roll, radius) from an orbit-style cam2world (origin-centred sphere)."""
    o = cam2world[:3, 3]
    radius = float(np.linalg.norm(o))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, -o[1] / radius))))
    yaw = math.degrees(math.atan2(o[0], o[2]))
    # Roll: compare the actual camera x axis with the unrolled look-at camera's.
    f = cam2world[:3, 2]
    unrolled = look_at(o, o + f)
    x_ref, y_ref = unrolled[:3, 0], unrolled[:3, 1]
    x = cam2world[:3, 0]
    roll = math.degrees(math.atan2(float(np.dot(x, y_ref)), float(np.dot(x, x_ref))))
    return OrbitAngles(yaw, pitch, roll, radius)


def rays(
    labels: torch.Tensor, resolution: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel rays of a batch of cameras, EG3D's ray sampler.

    Args:
        labels: ``(N, 25)`` camera labels.
        resolution: image side R; pixel (i, j) samples (u, v) = ((j + .5)/R, (i + .5)/R).

    Returns:
        origins ``(N, R*R, 3)`` and unit directions ``(N, R*R, 3)``, rows in row-major
        pixel order. Depth along these rays is Euclidean distance.
    """
    if labels.ndim != 2 or labels.shape[1] != LABEL_SIZE:
        raise ValueError(f"labels must be (N, 25), got {tuple(labels.shape)}")
    n = labels.shape[0]
    c2w = labels[:, :16].reshape(n, 4, 4)
    k = labels[:, 16:].reshape(n, 3, 3)
    fx, fy = k[:, 0, 0, None], k[:, 1, 1, None]
    cx, cy, sk = k[:, 0, 2, None], k[:, 1, 2, None], k[:, 0, 1, None]
    idx = (torch.arange(resolution, dtype=labels.dtype, device=labels.device) + 0.5) / resolution
    v, u = torch.meshgrid(idx, idx, indexing="ij")
    u = u.reshape(1, -1)
    v = v.reshape(1, -1)
    x = (u - cx + cy * sk / fy - sk * v / fy) / fx
    y = (v - cy) / fy
    cam = torch.stack([x, y, torch.ones_like(x), torch.ones_like(x)], dim=-1)  # (N, M, 4)
    world = torch.einsum("nij,nmj->nmi", c2w, cam)[..., :3]
    origins = c2w[:, None, :3, 3].expand_as(world)
    dirs = torch.nn.functional.normalize(world - origins, dim=-1)
    return origins.contiguous(), dirs


def project(points: FloatArray, label: npt.ArrayLike) -> FloatArray:
    """Project world points ``(M, 3)`` to normalised image coordinates (u, v) in [0, 1]."""
    c2w, k = split_label(label)
    w2c = np.linalg.inv(c2w)
    p = np.c_[np.asarray(points, dtype=np.float64), np.ones(len(points))] @ w2c.T
    uvw = p[:, :3] @ k.T
    return uvw[:, :2] / uvw[:, 2:3]
