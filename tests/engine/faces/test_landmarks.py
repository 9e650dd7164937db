import numpy as np
import pytest

from engine.faces import find_faces, to_rgb
from engine.faces.landmarks import N_LANDMARKS


def test_to_rgb_accepts_common_layouts_and_dtypes():
    g = np.full((5, 7), 100, np.uint8)
    assert to_rgb(g).shape == (5, 7, 3)
    assert to_rgb(g[:, :, None]).shape == (5, 7, 3)
    rgba = np.zeros((5, 7, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 7
    out = to_rgb(rgba)
    assert out.shape == (5, 7, 3) and out[0, 0, 0] == 200 and out[0, 0, 1] == 0
    assert to_rgb(np.ones((2, 2), np.float32))[0, 0, 0] == 255
    assert to_rgb(np.full((2, 2, 3), 65535, np.uint16))[0, 0, 0] == 255
    with pytest.raises(ValueError):
        to_rgb(np.zeros((2, 2, 2), np.uint8))


@pytest.mark.parametrize(
    "make",
    [
        lambda: np.zeros((480, 640, 3), np.uint8),
        lambda: np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8),
        lambda: np.zeros((1, 1, 3), np.uint8),
        lambda: np.full((9, 17, 3), 128, np.uint8),
        lambda: np.zeros((3000, 4000, 3), np.uint8),
    ],
    ids=["blank", "noise", "1x1", "17x9", "4000x3000"],
)
def test_no_face_inputs_give_no_faces(make, detector):
    assert find_faces(make(), detector=detector) == []


def test_astronaut_in_every_layout(astronaut, detector):
    gray = (astronaut.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    for img in (astronaut, gray, rgba):
        faces = find_faces(img, detector=detector)
        assert len(faces) == 1
        assert faces[0].n_landmarks == N_LANDMARKS


def test_huge_frame_is_downscaled_and_landmarks_scale_back(astronaut, detector):
    big = np.zeros((3000, 4000, 3), np.uint8)
    # The astronaut enlarged 3x, placed off-centre in a 4000x3000 frame.
    up = np.repeat(np.repeat(astronaut, 3, axis=0), 3, axis=1)
    big[700 : 700 + 1536, 1900 : 1900 + 1536] = up
    small = find_faces(astronaut, detector=detector)[0]
    faces = find_faces(big, detector=detector)
    assert len(faces) == 1
    expected = small.landmarks * 3 + np.array([1900, 700])
    err = np.linalg.norm(faces[0].landmarks - expected, axis=1)
    # 3x the astronaut's face: a few pixels of landmark disagreement between runs is normal.
    assert np.median(err) < 12, np.median(err)
