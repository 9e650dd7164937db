import math

import numpy as np
import pytest
import torch

from engine import camera


def test_frontal_camera_matches_eg3d():
    m = camera.orbit_cam2world(0.0, 0.0)
    np.testing.assert_allclose(m[:3, 3], [0.0, 0.0, 2.7], atol=1e-9)
    # EG3D's frontal camera: R = diag(1, -1, -1) (OpenCV camera in a y-up world), up to the pivot tilt.
    assert m[0, 0] == pytest.approx(1.0)
    assert m[1, 1] < -0.99 and m[2, 2] < -0.99


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (30, -10, 0), (-45, 20, 15), (80, 5, -30)])
def test_orbit_is_rotation_on_sphere_and_angles_round_trip(yaw, pitch, roll):
    m = camera.orbit_cam2world(yaw, pitch, roll)
    r = m[:3, :3]
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
    assert np.linalg.det(r) == pytest.approx(1.0)
    assert np.linalg.norm(m[:3, 3]) == pytest.approx(2.7)
    a = camera.angles_from_cam2world(m)
    assert (a.yaw_deg, a.pitch_deg, a.roll_deg) == pytest.approx((yaw, pitch, roll), abs=1e-6)


def test_sign_conventions():
    # Positive yaw moves the camera to +x; positive pitch moves it down (-y).
    assert camera.orbit_origin(20, 0)[0] > 0.5
    assert camera.orbit_origin(0, 20)[1] < -0.5


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (35, -20), (-60, 10)])
def test_centre_ray_passes_through_lookat(yaw, pitch):
    label = camera.orbit_label(yaw, pitch)
    o, d = camera.rays(torch.tensor(label)[None], 2)
    # With R = 2 the four pixels surround the centre; their mean direction is the axis.
    axis = torch.nn.functional.normalize(d[0].mean(0), dim=0).numpy()
    to_pivot = np.asarray(camera.LOOKAT) - o[0, 0].numpy()
    cos = np.dot(axis, to_pivot / np.linalg.norm(to_pivot))
    assert cos == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(camera.project(np.array([camera.LOOKAT]), label), [[0.5, 0.5]], atol=1e-9)


def test_rays_are_unit_and_row_major():
    label = torch.tensor(camera.orbit_label(0, 0))[None]
    _, d = camera.rays(label, 4)
    assert torch.allclose(d.norm(dim=-1), torch.ones(1, 16, dtype=d.dtype))
    # Row-major: pixel (0, 3) is to the right of (0, 0) (camera x = world +x when frontal) and above (1, 0).
    assert d[0, 3, 0] > d[0, 0, 0]
    assert d[0, 0, 1] > d[0, 4, 1]


def test_label_validation():
    with pytest.raises(ValueError):
        camera.split_label(np.zeros(24))
    with pytest.raises(ValueError):
        camera.rays(torch.zeros(2, 16), 8)
    assert camera.fov_to_focal(18.837) == pytest.approx(4.2647, rel=1e-3)
    assert math.isclose(camera.FOCAL, 4.2647, rel_tol=1e-4)


@pytest.mark.parametrize("yaw,pitch", [(0, 0), (25, -12), (-40, 30), (70, -5)])
def test_orbit_matches_eg3d_sampler_exactly(yaw, pitch):
    # Geometric pitch and EG3D's sampler parameterisation name the same camera.
    h = math.pi / 2 + math.radians(yaw)
    v = math.pi / 2 + math.radians(camera.sampler_from_pitch(pitch))
    np.testing.assert_allclose(camera.orbit_origin(yaw, pitch), camera.sampler_origin(h, v), atol=1e-12)
    assert camera.pitch_from_sampler(camera.sampler_from_pitch(pitch)) == pytest.approx(pitch, abs=1e-9)


def test_pitch_is_geometric_elevation():
    o = camera.orbit_origin(0, 30)
    elevation = math.degrees(math.asin(-o[1] / np.linalg.norm(o)))
    assert elevation == pytest.approx(30.0)
    # Near frontal EG3D's sampler offset is ~1.57x the tilt a person would measure.
    assert camera.sampler_from_pitch(5.0) == pytest.approx(5.0 * math.pi / 2, rel=2e-3)
