"""Overlays for people to look at: head axes, a landmark subset and the crop square."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engine.api import RGBImage
from engine.faces.landmarks import MOUTH_CORNERS, mesh_indices
from engine.faces.types import Face

AXIS_COLOURS = ((230, 40, 40), (40, 200, 40), (60, 110, 255))
"""Head x (person's left) red, y (up) green, z (out of the face) blue."""
BOX_COLOUR = (255, 210, 0)
POINT_COLOUR = (0, 255, 255)


def _pt(p: np.ndarray) -> tuple[int, int]:
    # Continuous pixel coordinates → OpenCV's pixel-centre integers.
    return int(round(float(p[0]) - 0.5)), int(round(float(p[1]) - 0.5))


def draw_faces(frame: RGBImage, faces: Sequence[Face], *, points: bool = True, axes: bool = True, box: bool = True) -> RGBImage:
    """A copy of ``frame`` with each face's crop square, landmark subset and head axes drawn."""
    out = frame.copy()
    mi = mesh_indices()
    subset = np.concatenate(
        [mi.left_eye, mi.right_eye, mi.left_brow, mi.right_brow, mi.lips, mi.face_oval, np.array(MOUTH_CORNERS)]
    )
    for face in faces:
        side = face.size
        thick = max(1, int(round(side / 150)))
        if box:
            q = np.array([_pt(p) for p in face.quad.corners()], dtype=np.int32)
            cv2.polylines(out, [q], True, BOX_COLOUR, thick, cv2.LINE_AA)
            # The crop's top edge (top-left → top-right corner) drawn thicker, so orientation shows.
            cv2.line(out, tuple(q[0]), tuple(q[3]), BOX_COLOUR, thick * 3, cv2.LINE_AA)
        if points:
            r = max(1, thick)
            for p in face.landmarks[subset]:
                cv2.circle(out, _pt(p), r, POINT_COLOUR, -1, cv2.LINE_AA)
        if axes:
            origin = face.quad.centre
            length = 0.35 * side
            # Orthographic projection of the head axes: the rotation's first two rows are image x, y.
            for k in (2, 1, 0):
                d = face.rotation[:2, k] * length
                cv2.arrowedLine(out, _pt(origin), _pt(origin + d), AXIS_COLOURS[k], thick * 2, cv2.LINE_AA, tipLength=0.15)
    return out
