import math

import cv2
import numpy as np
import pytest

from engine import camera
from engine.faces import find_faces
from engine.faces.pose import CANONICAL_LEAN_DEG, angles_from_rotation, head_rotation


def _one(img, detector):
    faces = find_faces(img, detector=detector)
    assert len(faces) == 1
    return faces[0]


def test_camera_label_is_an_eg3d_orbit_camera(astronaut, detector):
    f = _one(astronaut, detector)
    c2w, k = camera.split_label(f.camera)
    r = c2w[:3, :3]
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
    assert np.linalg.det(r) == pytest.approx(1.0, abs=1e-9)
    # EG3D: camera on the radius-2.7 sphere around the world origin, optical axis through the pivot.
    origin = c2w[:3, 3]
    assert np.linalg.norm(origin) == pytest.approx(camera.RADIUS, abs=1e-9)
    to_pivot = np.asarray(camera.LOOKAT) - origin
    assert float(r[:, 2] @ to_pivot / np.linalg.norm(to_pivot)) == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(k, camera.intrinsics())
    a = camera.angles_from_cam2world(c2w)
    assert (a.yaw_deg, a.pitch_deg, a.roll_deg) == pytest.approx((f.yaw, f.pitch, f.roll), abs=1e-6)
    # The astronaut faces the camera: a near-frontal pose.
    assert abs(f.yaw) < 15 and abs(f.pitch) < 25 and abs(f.roll) < 10


def test_mirror_flips_yaw_and_roll_keeps_pitch(astronaut, detector):
    f = _one(astronaut, detector)
    m = _one(np.ascontiguousarray(astronaut[:, ::-1]), detector)
    assert m.yaw == pytest.approx(-f.yaw, abs=2.0)
    assert m.roll == pytest.approx(-f.roll, abs=2.0)
    assert m.pitch == pytest.approx(f.pitch, abs=2.5)


@pytest.mark.parametrize("angle", [15.0, -15.0])
def test_in_plane_rotation_is_roll(astronaut, detector, angle):
    f = _one(astronaut, detector)
    centre = tuple(float(v) for v in f.quad.centre - 0.5)
    # cv2: positive angle = counter-clockwise on screen ⇒ positive roll (engine.camera's convention).
    rot = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D(centre, angle, 1.0), (512, 512), borderMode=cv2.BORDER_REFLECT_101)
    r = _one(rot, detector)
    assert r.roll - f.roll == pytest.approx(angle, abs=3.0)
    assert r.yaw == pytest.approx(f.yaw, abs=3.0) and r.pitch == pytest.approx(f.pitch, abs=3.0)


def _rotate_cloud(points, axis, deg):
    c = points.mean(0)
    rv = np.asarray(axis, dtype=np.float64) * math.radians(deg)
    r, _ = cv2.Rodrigues(rv)
    return (points - c) @ r.T + c


def test_sign_conventions_on_a_turned_mesh(astronaut, detector):
    """Turn the measured 3D mesh itself by known angles (camera frame: x right, y down, z away)."""
    pts = detector.detect(astronaut)[0]
    y0, p0, r0 = angles_from_rotation(head_rotation(pts))
    # Out-of-face direction (−z) towards image right (+x), which is the person's left: rotation about −y.
    yl, _, _ = angles_from_rotation(head_rotation(_rotate_cloud(pts, (0, -1, 0), 20)))
    assert yl - y0 == pytest.approx(-20.0, abs=1.5)
    # Chin up: out-of-face direction towards image up (−y): rotation about −x; pitch is geometric.
    _, pu, _ = angles_from_rotation(head_rotation(_rotate_cloud(pts, (-1, 0, 0), 15)))
    assert pu - p0 == pytest.approx(15.0, abs=1.5)
    # Counter-clockwise on screen (x towards −y) is positive roll.
    _, _, rr = angles_from_rotation(head_rotation(_rotate_cloud(pts, (0, 0, -1), 10)))
    assert rr - r0 == pytest.approx(10.0, abs=1.0)


def test_frontal_rotation_is_eg3d_frontal_camera():
    from engine.faces.pose import camera_from_rotation

    yaw, pitch, roll, c2w = camera_from_rotation(np.diag([1.0, -1.0, -1.0]))
    assert (yaw, pitch, roll) == pytest.approx((0.0, 0.0, 0.0), abs=1e-9)
    np.testing.assert_allclose(c2w, camera.orbit_cam2world(0, 0), atol=1e-12)
    assert 5.0 < CANONICAL_LEAN_DEG < 12.0
