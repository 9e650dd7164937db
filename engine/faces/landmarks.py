"""Face landmarks from mediapipe 0.10.21's ``solutions.face_mesh`` (models bundled in the wheel).

One :class:`LandmarkDetector` wraps one mediapipe graph: ``tracking=True`` for a stream (the
graph reuses the previous frame's face boxes, ~2x cheaper), ``tracking=False`` for a single
still. With refined landmarks the mesh has 478 points: 468 face points + 2 x 5 iris points.

Coordinates. Landmarks are returned in *continuous pixel coordinates*: x right, y down, origin
at the top-left corner of the top-left pixel (pixel ``(i, j)`` spans ``[j, j+1) x [i, i+1)``),
plus a depth ``z`` in the same pixel units, growing away from the camera (mediapipe's z is
scaled like x). So ``points[:, :3]`` is a right-handed, OpenCV-like (x right, y down, z
forward) point cloud of the face, which the pose solver uses directly.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cache
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from engine.api import RGBImage

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

N_LANDMARKS = 478
"""Face mesh points with refined (iris) landmarks."""
MIN_SIDE = 16
"""Images with a side shorter than this cannot hold a face the detector would find."""
MOUTH_CORNERS = (61, 291)
"""Mesh indices of the mouth corners (person's right, person's left); mediapipe topology facts."""
FOREHEAD, SUBNASALE = 10, 2
"""Mid-line mesh points used for the head's up axis (see ``engine.faces.pose``)."""


@dataclass(frozen=True)
class MeshIndices:
    """Landmark index sets, read from mediapipe's own connection tables (not hand-typed)."""

    left_eye: IntArray
    """Contour of the person's left eye (on the image's right in a frontal view)."""
    right_eye: IntArray
    left_brow: IntArray
    right_brow: IntArray
    left_iris: IntArray
    right_iris: IntArray
    face_oval: IntArray
    lips: IntArray


def _points(connections: Any) -> IntArray:
    return np.array(sorted({i for edge in connections for i in edge}), dtype=np.int64)


@cache
def mesh_indices() -> MeshIndices:
    from mediapipe.python.solutions import face_mesh_connections as c

    return MeshIndices(
        left_eye=_points(c.FACEMESH_LEFT_EYE),
        right_eye=_points(c.FACEMESH_RIGHT_EYE),
        left_brow=_points(c.FACEMESH_LEFT_EYEBROW),
        right_brow=_points(c.FACEMESH_RIGHT_EYEBROW),
        left_iris=_points(c.FACEMESH_LEFT_IRIS),
        right_iris=_points(c.FACEMESH_RIGHT_IRIS),
        face_oval=_points(c.FACEMESH_FACE_OVAL),
        lips=_points(c.FACEMESH_LIPS),
    )


def to_rgb(image: npt.NDArray[Any]) -> RGBImage:
    """Any common image array → contiguous ``(H, W, 3)`` uint8 RGB.

    Accepts grayscale ``(H, W)`` / ``(H, W, 1)``, RGB, RGBA (alpha dropped), and uint8,
    uint16, bool or float (taken as 0..1) samples.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype.kind == "f":
        a = np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


class LandmarkDetector:
    """Runs mediapipe's face mesh; returns each face's ``(478, 3)`` landmarks in pixels.

    Args:
        tracking: stream mode (reuse last frame's boxes) instead of per-image detection.
        max_faces: how many faces the graph looks for.
        max_side: frames whose longer side exceeds this are downscaled before the graph
            sees them (the detector works at 128 px anyway; landmarks are scaled back).
        min_detection_confidence, min_tracking_confidence: mediapipe's thresholds.
    """

    def __init__(
        self,
        *,
        tracking: bool = True,
        max_faces: int = 1,
        max_side: int = 1280,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
    ) -> None:
        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        from mediapipe.python.solutions import face_mesh

        self.tracking = tracking
        self.max_faces = max_faces
        self.max_side = max_side
        self._mesh = face_mesh.FaceMesh(
            static_image_mode=not tracking,
            max_num_faces=max_faces,
            refine_landmarks=True,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._closed = False

    def detect(self, image: RGBImage) -> list[FloatArray]:
        """Landmarks ``(478, 3)`` (x, y, z in pixels) of each face found, in mediapipe's order."""
        if self._closed:
            raise RuntimeError("LandmarkDetector is closed")
        h, w = image.shape[:2]
        if min(h, w) < MIN_SIDE:
            return []
        scale = min(1.0, self.max_side / max(h, w))
        small: npt.NDArray[Any] = image
        if scale < 1.0:
            small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        res = self._mesh.process(np.ascontiguousarray(small))
        faces = res.multi_face_landmarks or []
        out = []
        for f in faces:
            a = np.array([(p.x, p.y, p.z) for p in f.landmark], dtype=np.float64)
            if a.shape[0] != N_LANDMARKS:
                log.debug("skipping a face with %d landmarks", a.shape[0])
                continue
            # Normalised coordinates carry over unchanged from the downscaled frame; z is scaled like x.
            a[:, 0] *= w
            a[:, 1] *= h
            a[:, 2] *= w
            out.append(a)
        return out

    def detect_tiled(self, image: RGBImage, want: int = 1) -> list[FloatArray]:
        """Stills only: the whole image first; if fewer than ``want`` faces, also overlapping tiles.

        mediapipe's short-range detector sees the image at 128 px, so a face under roughly a
        fifth of the frame's side is often missed; in half-size tiles (50% overlap) it is twice
        as big. A face seen twice is kept from the view where it sits farthest from a tile edge.
        """
        found = self.detect(image)
        h, w = image.shape[:2]
        t = min(h, w) // 2
        if len(found) >= want or t < 64:
            return found
        cands: list[tuple[float, FloatArray]] = [(math.inf, p) for p in found]
        step = t // 2
        for y0 in range(0, max(h - t, 0) + step, step):
            for x0 in range(0, max(w - t, 0) + step, step):
                y0c, x0c = min(y0, h - t), min(x0, w - t)
                for p in self.detect(np.ascontiguousarray(image[y0c : y0c + t, x0c : x0c + t])):
                    p = p + np.array([x0c, y0c, 0.0])
                    lo, hi = p[:, :2].min(0), p[:, :2].max(0)
                    # Distance to the tile's inner edges (edges on the image border do not cut faces).
                    gaps = [
                        lo[0] - x0c if x0c > 0 else math.inf,
                        lo[1] - y0c if y0c > 0 else math.inf,
                        x0c + t - hi[0] if x0c + t < w else math.inf,
                        y0c + t - hi[1] if y0c + t < h else math.inf,
                    ]
                    cands.append((min(gaps) / max(float((hi - lo).max()), 1.0), p))
        cands.sort(key=lambda c: -c[0])
        kept: list[FloatArray] = []
        for _, p in cands:
            c, side = p[:, :2].mean(0), float(np.ptp(p[:, :2], axis=0).max())
            if all(np.hypot(*(c - q[:, :2].mean(0))) > 0.5 * max(side, float(np.ptp(q[:, :2], axis=0).max())) for q in kept):
                kept.append(p)
        return kept

    def close(self) -> None:
        if not self._closed:
            self._mesh.close()
            self._closed = True

    def __enter__(self) -> LandmarkDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
