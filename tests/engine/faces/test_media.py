"""Checks on real photos in ../shared/media (skipped where that folder is absent)."""

import numpy as np
import pytest
from PIL import Image

from engine.faces import crop, find_faces, paste, to_rgb

pytestmark = pytest.mark.media

PHOTOS = [
    "p01_pichai_glasses.jpg",
    "p07_aniston_blonde.jpg",
    "p10_zuckerberg_smallface.jpg",
    "p18_obama.jpg",
    "p25_sergey_frontal.png",
    "p27_pose_left.jpeg",
    "p34_facemask.jpg",
]


def load(media, name):
    return to_rgb(np.asarray(Image.open(media / name)))


@pytest.mark.parametrize("name", PHOTOS)
def test_one_face_found_on_each_photo(media, detector, name):
    img = load(media, name)
    faces = find_faces(img, detector=detector)
    assert len(faces) == 1
    f = faces[0]
    c = crop(img, f)
    out = paste(img, f, c)
    assert out.shape == img.shape
    assert abs(f.roll) < 30


def test_frontal_photos_are_near_frontal(media, detector):
    for name in ("p18_obama.jpg", "p25_sergey_frontal.png"):
        f = find_faces(load(media, name), detector=detector)[0]
        assert abs(f.yaw) < 10 and abs(f.pitch) < 10, (name, f.yaw, f.pitch)


def test_profile_photo_has_a_large_yaw(media, detector):
    f = find_faces(load(media, "p27_pose_left.jpeg"), detector=detector)[0]
    assert abs(f.yaw) > 35, f.yaw


def test_multiface_photo_gives_several_faces(media, detector):
    img = load(media, "p14_selfie_multiface.jpg")
    assert len(find_faces(img, max_faces=1, detector=detector)) == 1
    faces = find_faces(img, max_faces=8, detector=detector)
    assert len(faces) >= 3
    sizes = [f.size for f in faces]
    assert sizes == sorted(sizes, reverse=True)
