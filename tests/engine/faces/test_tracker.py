import numpy as np
import pytest

from engine.api import StyleContext
from engine.faces import Face, FaceTracker, TrackerSettings
from engine.registry import build_engine


def test_pose_style_through_the_engine_seam(astronaut):
    engine = build_engine()
    assert "pose" in engine.registry
    info = engine.registry.get("pose").info
    assert info.kind == "face" and info.needs_faces
    session = engine.open_session()
    try:
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:, 64:576] = astronaut[16:496]
        out = session.process(frame, style="pose", intensity=1.0, timestamp=0.0)
        assert out.image.shape == frame.shape and out.image.dtype == np.uint8
        assert out.faces == 1 and out.too_small == 0
        assert not np.array_equal(out.image, frame)  # the overlay is drawn
        blank = np.full((480, 640, 3), 90, np.uint8)
        out = session.process(blank, style="pose", intensity=1.0, timestamp=1 / 30)
        assert out.faces == 0
        np.testing.assert_array_equal(out.image, blank)
    finally:
        session.close()


def test_tracker_smooths_forgets_lost_faces_and_counts_small_ones(astronaut):
    tracker = FaceTracker(TrackerSettings(crop_size=128))
    try:
        rng = np.random.default_rng(0)
        yaws = []
        for i in range(8):
            noisy = np.clip(astronaut.astype(int) + rng.integers(-6, 7, astronaut.shape), 0, 255).astype(np.uint8)
            r = tracker.track(noisy, i / 30)
            assert len(r.faces) == 1 and isinstance(r.faces[0], Face)
            assert r.faces[0].crop_size == 128 and r.faces[0].camera.shape == (25,)
            yaws.append(r.faces[0].yaw)
        assert len(tracker._tracks) == 1
        r = tracker.track(np.zeros_like(astronaut), 8 / 30)
        assert r.faces == [] and tracker._tracks == []
    finally:
        tracker.close()
    small = FaceTracker(TrackerSettings(min_face_px=10_000))
    try:
        r = small.track(astronaut, 0.0)
        assert r.faces == [] and r.too_small == 1
    finally:
        small.close()


def test_unsmoothed_tracker_matches_the_still_analysis(astronaut, detector):
    from engine.faces import find_faces

    still = find_faces(astronaut, detector=detector)[0]
    tracker = FaceTracker(TrackerSettings(smooth=False))
    try:
        f = tracker.track(astronaut, 0.0).faces[0]
    finally:
        tracker.close()
    assert f.yaw == pytest.approx(still.yaw, abs=3) and f.roll == pytest.approx(still.roll, abs=3)
    np.testing.assert_allclose(f.quad.centre, still.quad.centre, atol=4)


def test_pose_style_without_faces_is_a_no_op():
    from engine.styles.pose import PoseOverlay

    frame = np.zeros((4, 4, 3), np.uint8)
    assert PoseOverlay().apply(frame, StyleContext(intensity=1.0, timestamp=0.0, state=None, faces=[])) is frame
