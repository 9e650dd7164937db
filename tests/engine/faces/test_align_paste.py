import numpy as np
import pytest

from engine.faces import crop, find_faces, match_colors, paste
from engine.faces.align import apply_affine, eye_mouth_points, invert_affine


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def face512(astronaut, detector):
    return find_faces(astronaut, crop_size=512, detector=detector)[0]


def test_affines_are_inverse_and_sizes_are_checked(face512):
    fwd, inv = face512.affines()
    p = np.array([[10.0, 20.0], [300.0, 111.0]])
    np.testing.assert_allclose(apply_affine(inv, apply_affine(fwd, p)), p, atol=1e-9)
    np.testing.assert_allclose(invert_affine(fwd), inv, atol=1e-9)
    # The quad's corners land on the crop's corners (FFHQ order: TL, BL, BR, TR).
    np.testing.assert_allclose(apply_affine(fwd, face512.quad.corners()), [[0, 0], [0, 512], [512, 512], [512, 0]], atol=1e-9)
    for bad in (63, 513):
        with pytest.raises(ValueError):
            face512.affines(bad)


def test_crop_puts_eyes_and_mouth_where_the_convention_says(astronaut, face512, detector):
    c = crop(astronaut, face512)
    assert c.shape == (512, 512, 3)
    mapped = np.array([apply_affine(face512.affine, p[None])[0] for p in eye_mouth_points(face512.landmarks)])
    # FFHQ geometry: eyes level and centred left-right, mouth below, centre 10% of the way eye→mouth.
    el, er, ml, mr = mapped
    assert abs(el[1] - er[1]) < 1.0 and abs((el[0] + er[0]) / 2 - 256) < 1.0
    eye_avg, mouth_avg = (el + er) / 2, (ml + mr) / 2
    np.testing.assert_allclose(eye_avg + 0.1 * (mouth_avg - eye_avg), [256, 256], atol=1.0)
    # Independent check of the warp itself: landmarks found again *in the crop* agree.
    again = find_faces(c, detector=detector)
    assert len(again) == 1
    found = np.array(eye_mouth_points(again[0].landmarks))
    err = np.linalg.norm(found - mapped, axis=1)
    assert err.max() < 5.0, err


def test_face_partly_outside_the_frame_still_crops(astronaut, face512, detector):
    # Shift the frame so the left third of the face is cut off.
    x_cut = int(face512.bbox[0] + (face512.bbox[2] - face512.bbox[0]) / 3)
    part = np.ascontiguousarray(astronaut[:, x_cut:])
    faces = find_faces(part, crop_size=256, detector=detector)
    assert len(faces) == 1
    c = crop(part, faces[0])
    assert c.shape == (256, 256, 3)
    # Reflect padding: no flat black band where the frame ends.
    assert (c.reshape(-1, 3).sum(1) == 0).mean() < 0.01
    out = paste(part, faces[0], c)
    assert out.shape == part.shape


def test_paste_of_the_unmodified_crop_reproduces_the_frame(astronaut, face512):
    for size in (512, 256):
        out = paste(astronaut, face512, crop(astronaut, face512, size))
        assert out.shape == astronaut.shape and out.dtype == np.uint8
        assert psnr(out, astronaut) >= 40.0, (size, psnr(out, astronaut))


def test_paste_changes_only_the_face_with_a_soft_edge(astronaut, face512):
    edited = np.zeros((512, 512, 3), np.uint8)
    edited[..., 2] = 255
    out = paste(astronaut, face512, edited)
    diff = np.abs(out.astype(int) - astronaut.astype(int)).sum(2)
    # Far from the face: untouched. Between the eyes: the edit.
    assert diff[500, 10] == 0 and diff[5, 500] == 0
    cx, cy = face512.landmarks[6].astype(int)  # mesh point 6: nose bridge
    np.testing.assert_array_equal(out[cy, cx], [0, 0, 255])
    m = face512.feather_mask()
    assert m.max() == pytest.approx(1.0, abs=1e-3)
    assert m[0].max() == 0 and m[-1].max() == 0 and m[:, 0].max() == 0 and m[:, -1].max() == 0
    # Feathered: along a row through the face the mask rises gradually, not as a step.
    row = m[256]
    assert ((row > 0.05) & (row < 0.95)).sum() >= 10


def test_colour_matching_matches_statistics_in_the_mask(astronaut, face512):
    original = crop(astronaut, face512)
    tinted = np.clip(original.astype(int) * [0.6, 0.9, 1.3] + [30, 0, -20], 0, 255).astype(np.uint8)
    m = face512.feather_mask()
    fixed = match_colors(tinted, original, m)
    w = m / m.sum()
    for ch in range(3):
        mean_o = (original[..., ch] * w).sum()
        assert (fixed[..., ch] * w).sum() == pytest.approx(mean_o, abs=1.5)
        assert abs((tinted[..., ch] * w).sum() - mean_o) > 5
    out = paste(astronaut, face512, tinted, color_match=True)
    assert psnr(out, astronaut) > psnr(paste(astronaut, face512, tinted), astronaut)
