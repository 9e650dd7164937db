"""Per-session face tracking (``engine.api.FaceTracker``) and one-shot analysis of a still.

Per frame: mesh landmarks → head pose → EG3D camera → FFHQ crop square, each smoothed by its
own One Euro filter per tracked face. Faces are matched to the previous frame's by the
distance between crop centres; a face that is not matched is forgotten with its filters, so a
face that comes back starts clean. Faces whose crop square is under ``min_face_px`` are still
tracked, but reported only as ``too_small`` (the frame passes through unedited there).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.api import RGBImage, TrackResult
from engine.faces.align import CropQuad, check_size, crop_affine, ffhq_quad
from engine.faces.landmarks import LandmarkDetector, to_rgb
from engine.faces.pose import HeadPose, estimate_pose, pose_from_angles
from engine.faces.smoothing import OneEuroFilter, OneEuroParams
from engine.faces.types import Face

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrackerSettings:
    max_faces: int = 1
    """Faces returned per frame, largest first."""
    crop_size: int = 256
    """Side of the aligned crop the faces describe (64..512)."""
    min_face_px: float = 64.0
    """Faces whose crop square is smaller than this (frame pixels) are passed through."""
    crop_scale: float = 1.0
    """Widen the FFHQ square about its centre (1 = FFHQ)."""
    smooth: bool = True
    landmarks: OneEuroParams = OneEuroParams(min_cutoff=1.0, beta=0.05, d_cutoff=1.0)
    """Landmark filter; speed in pixels/s."""
    pose: OneEuroParams = OneEuroParams(min_cutoff=0.8, beta=0.08, d_cutoff=1.0)
    """Yaw/pitch/roll filter; speed in degrees/s."""
    crop: OneEuroParams = OneEuroParams(min_cutoff=1.0, beta=0.05, d_cutoff=1.0)
    """Crop-square filter (centre and half-side vector); speed in pixels/s."""
    max_side: int = 1280
    """Frames larger than this are downscaled for the landmark graph."""
    min_detection_confidence: float = 0.5

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {self.max_faces}")
        check_size(self.crop_size)


def build_face(
    points: FloatArray,
    image_size: tuple[int, int],
    *,
    crop_size: int = 256,
    crop_scale: float = 1.0,
    pose: HeadPose | None = None,
    quad: CropQuad | None = None,
    min_face_px: float = 0.0,
) -> Face:
    """A :class:`Face` from one ``(478, 3)`` mesh; ``pose``/``quad`` override (e.g. smoothed) values."""
    pose = estimate_pose(points, image_size) if pose is None else pose
    quad = ffhq_quad(points, scale=crop_scale) if quad is None else quad
    fwd, inv = crop_affine(quad, crop_size)
    xy = points[:, :2]
    x0, y0 = xy.min(0)
    x1, y1 = xy.max(0)
    return Face(
        bbox=(float(x0), float(y0), float(x1), float(y1)),
        landmarks=xy.copy(),
        depth=points[:, 2].copy(),
        yaw=pose.yaw,
        pitch=pose.pitch,
        roll=pose.roll,
        rotation=pose.rotation,
        camera=pose.label,
        translation=pose.translation,
        quad=quad,
        crop_size=crop_size,
        affine=fwd,
        inverse=inv,
        too_small=quad.side < min_face_px,
    )


def find_faces(
    image: npt.NDArray[Any],
    *,
    max_faces: int = 1,
    crop_size: int = 256,
    crop_scale: float = 1.0,
    min_face_px: float = 0.0,
    detector: LandmarkDetector | None = None,
) -> list[Face]:
    """All faces (up to ``max_faces``) in one still image, largest first; no smoothing.

    When the whole image shows fewer than ``max_faces`` faces, overlapping tiles are searched
    too (small faces in large photos); see ``LandmarkDetector.detect_tiled``.
    """
    rgb = to_rgb(image)
    check_size(crop_size)
    own = detector is None
    det = detector or LandmarkDetector(tracking=False, max_faces=max_faces)
    try:
        meshes = det.detect_tiled(rgb, want=max_faces)
    finally:
        if own:
            det.close()
    faces = [
        build_face(p, (rgb.shape[0], rgb.shape[1]), crop_size=crop_size, crop_scale=crop_scale, min_face_px=min_face_px)
        for p in meshes
    ]
    faces.sort(key=lambda f: f.size, reverse=True)
    return faces[:max_faces]


@dataclass
class _Track:
    centre: FloatArray
    side: float
    landmarks: OneEuroFilter
    pose: OneEuroFilter
    crop: OneEuroFilter
    roll: float | None = None


@dataclass
class FaceTracker:
    """Implements ``engine.api.FaceTracker`` for one session (one mediapipe graph, not shared)."""

    settings: TrackerSettings = field(default_factory=TrackerSettings)
    _detector: LandmarkDetector | None = None
    _tracks: list[_Track] = field(default_factory=list)

    def _det(self) -> LandmarkDetector:
        if self._detector is None:
            s = self.settings
            self._detector = LandmarkDetector(
                tracking=True,
                max_faces=s.max_faces,
                max_side=s.max_side,
                min_detection_confidence=s.min_detection_confidence,
            )
        return self._detector

    def track(self, frame: RGBImage, timestamp: float) -> TrackResult:
        rgb = to_rgb(frame)
        meshes = self._det().detect(rgb)
        if not meshes:
            self._tracks.clear()  # face lost: filters restart with the next face
            return TrackResult(faces=[], too_small=0)
        s = self.settings
        raw = sorted(((p, ffhq_quad(p, scale=s.crop_scale)) for p in meshes), key=lambda pq: pq[1].side, reverse=True)
        previous, self._tracks = self._tracks, []
        faces: list[Face] = []
        for points, quad in raw:
            track = self._match(previous, quad)
            self._tracks.append(track)
            faces.append(self._face(track, points, quad, (rgb.shape[0], rgb.shape[1]), timestamp))
        big = [f for f in faces if not f.too_small]
        return TrackResult(faces=big[: s.max_faces], too_small=len(faces) - len(big))

    def _match(self, previous: list[_Track], quad: CropQuad) -> _Track:
        best, best_d = None, math.inf
        for t in previous:
            d = float(np.hypot(*(t.centre - quad.centre)))
            if d < 0.5 * max(t.side, quad.side) and d < best_d:
                best, best_d = t, d
        if best is not None:
            previous.remove(best)
            best.centre, best.side = quad.centre, quad.side
            return best
        s = self.settings
        return _Track(quad.centre, quad.side, OneEuroFilter(s.landmarks), OneEuroFilter(s.pose), OneEuroFilter(s.crop))

    def _face(self, track: _Track, points: FloatArray, quad: CropQuad, size: tuple[int, int], t: float) -> Face:
        s = self.settings
        raw_pose = estimate_pose(points, size)
        if not s.smooth:
            return build_face(points, size, crop_size=s.crop_size, pose=raw_pose, quad=quad, min_face_px=s.min_face_px)
        roll = raw_pose.roll
        if track.roll is not None:  # unwrap so the filter never averages across ±180°
            roll = track.roll + ((roll - track.roll + 180.0) % 360.0 - 180.0)
        yaw, pitch, roll = track.pose(np.array([raw_pose.yaw, raw_pose.pitch, roll]), t)
        track.roll = float(roll)
        roll = (roll + 180.0) % 360.0 - 180.0
        pose = pose_from_angles(float(yaw), float(pitch), float(roll), raw_pose.translation)
        smooth_quad = CropQuad.from_vector(track.crop(quad.as_vector(), t))
        smooth_points = track.landmarks(points, t)
        return build_face(
            smooth_points, size, crop_size=s.crop_size, pose=pose, quad=smooth_quad, min_face_px=s.min_face_px
        )

    def reset(self) -> None:
        self._tracks.clear()
        if self._detector is not None:  # a fresh graph forgets mediapipe's own tracking state too
            self._detector.close()
            self._detector = None

    def close(self) -> None:
        self.reset()


def tracker_factory(settings: TrackerSettings | None = None) -> FaceTracker:
    return FaceTracker(settings or TrackerSettings())
