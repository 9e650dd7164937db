"""Head pose from the face mesh, expressed as an EG3D camera.

Rotation. mediapipe's refined mesh is a 3D point cloud in an OpenCV-like frame (x right,
y down, z away from the camera, all in pixels; see ``engine.faces.landmarks``). Within the
small patch of a face the projection is close to orthographic, so the cloud's orientation
*is* the head's orientation relative to the camera ray through the face, which is what an
aligned crop sees. We build the head frame from it directly:

* x (person's left): the mesh is mirror-symmetric, so the sum of (left − right) centroid
  differences of the eye contours, brows and irises points along the head's left-right axis
  whatever the pose.
* y (up): the mid-line vector from the subnasale (point 2) to the forehead top (point 10),
  made orthogonal to x. In mediapipe's canonical face model (canonical_face_model.obj, whose
  frame is EG3D's: y up, +z out of the face) that vector leans back by
  ``CANONICAL_LEAN_DEG`` ≈ 8.66°, so we tilt it forward by that much to get the model's up.
  Both rigid points avoid the jaw, so talking does not move the pitch.
* z = x × y (out of the face).

The canonical model is not in the mediapipe 0.10.21 wheel, so the two mid-line vertices the
lean comes from are quoted below as facts (obj vertices 11 and 3, i.e. mesh points 10 and 2).

Camera. EG3D keeps the head fixed in a y-up world facing +z and moves the camera, so the
camera's cam2world rotation is the transpose of the head's camera-from-head rotation. For a
frontal face that is diag(1, −1, −1), EG3D's frontal camera. We read yaw/pitch/roll off that
rotation (``engine.camera``'s conventions: head turned to the person's left ⇒ negative yaw,
chin up ⇒ positive pitch, face rotated counter-clockwise in the image ⇒ positive roll) and
rebuild the label with ``orbit_cam2world``: the camera sits on EG3D's radius-2.7 sphere around
the world origin and looks at the pivot (0, 0, 0.2), with EG3D's normalised intrinsics.

Angles are geometric degrees (``engine.camera``); EG3D's own sampler offsets convert with
``engine.camera.sampler_from_pitch``.

Translation (rough, not used by the label: EG3D crops normalise position and scale): a
pinhole with the given horizontal field of view and an average 63 mm inter-pupillary
distance; millimetres, OpenCV camera axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine import camera
from engine.faces.landmarks import FOREHEAD, SUBNASALE, mesh_indices

FloatArray = npt.NDArray[np.float64]

# mediapipe canonical_face_model.obj (Apache-2.0), mesh points 10 and 2 (y, z), in its units (cm).
_CANONICAL_FOREHEAD_YZ = (8.261778, 4.481535)
_CANONICAL_SUBNASALE_YZ = (-2.089024, 6.058267)
CANONICAL_LEAN_DEG = math.degrees(
    math.atan2(
        _CANONICAL_SUBNASALE_YZ[1] - _CANONICAL_FOREHEAD_YZ[1],
        _CANONICAL_FOREHEAD_YZ[0] - _CANONICAL_SUBNASALE_YZ[0],
    )
)
"""How far the subnasale→forehead line leans back from vertical in the canonical model."""

IPD_MM = 63.0
"""Average adult inter-pupillary distance, for the rough translation."""


@dataclass(frozen=True)
class HeadPose:
    rotation: FloatArray
    """3x3 camera-from-head rotation (columns: head x = person's left, y = up, z = out of the face)."""
    yaw: float
    pitch: float
    roll: float
    """Degrees, ``engine.camera`` conventions."""
    cam2world: FloatArray
    """4x4 EG3D orbit camera (radius 2.7, looking at (0, 0, 0.2))."""
    label: FloatArray
    """EG3D's 25-number camera label."""
    translation: FloatArray
    """Rough head position in mm (OpenCV camera axes), for display only."""


def _unit(v: FloatArray) -> FloatArray:
    n = float(np.linalg.norm(v))
    if n < 1e-9:
        raise ValueError("degenerate landmarks: zero-length axis")
    return v / n


def head_rotation(points: FloatArray) -> FloatArray:
    """Camera-from-head rotation from a ``(478, 3)`` mesh in pixel units (see module doc)."""
    if points.ndim != 2 or points.shape[1] != 3 or points.shape[0] < 478:
        raise ValueError(f"expected (478, 3) landmarks, got {points.shape}")
    mi = mesh_indices()
    across = (
        points[mi.left_eye].mean(0) - points[mi.right_eye].mean(0)
        + points[mi.left_brow].mean(0) - points[mi.right_brow].mean(0)
        + points[mi.left_iris].mean(0) - points[mi.right_iris].mean(0)
    )
    ex = _unit(across)
    v = points[FOREHEAD] - points[SUBNASALE]
    v = _unit(v - ex * float(v @ ex))
    # v = cos·up − sin·forward; rotate it forward about x by the canonical lean to get up.
    lean = math.radians(CANONICAL_LEAN_DEG)
    w = np.cross(ex, v)
    ey = _unit(math.cos(lean) * v + math.sin(lean) * w)
    ez = np.cross(ex, ey)
    return np.stack([ex, ey, ez], axis=1)


def camera_from_rotation(rotation: FloatArray) -> tuple[float, float, float, FloatArray]:
    """(yaw, pitch, roll, cam2world) of the EG3D orbit camera that sees the head at ``rotation``."""
    c2w_rot = rotation.T
    forward = c2w_rot[:, 2]
    probe = np.eye(4)
    probe[:3, :3] = c2w_rot
    probe[:3, 3] = -camera.RADIUS * forward  # a camera looking through the origin, same orientation
    a = camera.angles_from_cam2world(probe)
    c2w = camera.orbit_cam2world(a.yaw_deg, a.pitch_deg, a.roll_deg)
    return a.yaw_deg, a.pitch_deg, a.roll_deg, c2w


def rough_translation(points: FloatArray, image_size: tuple[int, int], hfov_deg: float = 60.0) -> FloatArray:
    """Head position (mm) under a pinhole of ``hfov_deg`` and an average IPD; display only."""
    h, w = image_size
    mi = mesh_indices()
    f = (w / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    ipd_px = float(np.linalg.norm(points[mi.left_iris].mean(0) - points[mi.right_iris].mean(0)))
    z = f * IPD_MM / max(ipd_px, 1e-6)
    c = points[:, :2].mean(0)
    return np.array([(c[0] - w / 2.0) * z / f, (c[1] - h / 2.0) * z / f, z])


def angles_from_rotation(rotation: FloatArray) -> tuple[float, float, float]:
    yaw, pitch, roll, _ = camera_from_rotation(rotation)
    return yaw, pitch, roll


def pose_from_angles(yaw: float, pitch: float, roll: float, translation: FloatArray) -> HeadPose:
    """A HeadPose for given (e.g. smoothed) angles."""
    c2w = camera.orbit_cam2world(yaw, pitch, roll)
    # The head's rotation seen by this camera (the orbit camera's tilt towards the pivot included).
    return HeadPose(c2w[:3, :3].T.copy(), yaw, pitch, roll, c2w, camera.make_label(c2w), translation)


def estimate_pose(points: FloatArray, image_size: tuple[int, int]) -> HeadPose:
    """Head pose of one face mesh ``(478, 3)`` (pixels) in an image of ``(height, width)``."""
    yaw, pitch, roll, _ = camera_from_rotation(head_rotation(points))
    return pose_from_angles(yaw, pitch, roll, rough_translation(points, image_size))
