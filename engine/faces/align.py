"""FFHQ/EG3D-style aligned face crop and its inverse.

The FFHQ recipe (Karras et al., ``recreate_aligned_images``), restated:

* eye centres ``e_l, e_r`` (image-left and image-right eye), mouth corners ``m_l, m_r``;
* ``eye_avg = (e_l + e_r)/2``, ``eye_to_eye = e_r − e_l``,
  ``eye_to_mouth = (m_l + m_r)/2 − eye_avg``;
* the crop's x axis ``x = eye_to_eye − rot90(eye_to_mouth)`` (both vectors vote for the
  face's horizontal), scaled to ``max(2.0·|eye_to_eye|, 1.8·|eye_to_mouth|)``;
* ``y = rot90(x)``; centre ``c = eye_avg + 0.1·eye_to_mouth``;
* the crop is the square ``c ± x ± y`` (side ``2|x|``) resampled to ``size × size``.

Here the eye centres are the centroids of mediapipe's eye contours (FFHQ used the mean of
dlib's six eye points, the same idea). ``scale`` > 1 widens the square about the same centre.

Coordinates are continuous pixels (origin at the top-left *corner*, see ``landmarks``); the
2x3 affines map frame → crop and crop → frame in that convention. OpenCV samples at pixel
centres, so the warps shift by half a pixel on either side.

A square reaching past the frame edges is filled by reflection (``BORDER_REFLECT_101``), so a
face partly outside the frame still gives a full crop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from engine.api import RGBImage
from engine.faces.landmarks import MOUTH_CORNERS, mesh_indices

FloatArray = npt.NDArray[np.float64]

MIN_CROP, MAX_CROP = 64, 512


def check_size(size: int) -> int:
    if not (MIN_CROP <= int(size) <= MAX_CROP):
        raise ValueError(f"crop size must be in [{MIN_CROP}, {MAX_CROP}], got {size}")
    return int(size)


@dataclass(frozen=True)
class CropQuad:
    """The oriented square: centre ``c`` and half-side vector ``x`` (crop +x direction); y = rot90(x)."""

    centre: FloatArray
    half: FloatArray

    @property
    def side(self) -> float:
        return 2.0 * float(np.hypot(*self.half))

    def corners(self) -> FloatArray:
        """(4, 2): top-left, bottom-left, bottom-right, top-right (FFHQ's order)."""
        x = self.half
        y = np.array([-x[1], x[0]])
        c = self.centre
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])

    def as_vector(self) -> FloatArray:
        return np.concatenate([self.centre, self.half])

    @staticmethod
    def from_vector(v: FloatArray) -> CropQuad:
        return CropQuad(np.asarray(v[:2], dtype=np.float64), np.asarray(v[2:4], dtype=np.float64))


def eye_mouth_points(landmarks: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """(image-left eye, image-right eye, image-left mouth corner, image-right mouth corner) for an upright face."""
    mi = mesh_indices()
    pts = landmarks[:, :2]
    # mediapipe's "right" eye is the person's right: the image-left one in an upright, unmirrored view.
    return (
        pts[mi.right_eye].mean(0),
        pts[mi.left_eye].mean(0),
        pts[MOUTH_CORNERS[0]],
        pts[MOUTH_CORNERS[1]],
    )


def ffhq_quad(landmarks: FloatArray, scale: float = 1.0, shift: float = 0.1) -> CropQuad:
    """FFHQ's oriented crop square from a face mesh (see module doc)."""
    el, er, ml, mr = eye_mouth_points(landmarks)
    eye_avg = (el + er) / 2.0
    eye_to_eye = er - el
    eye_to_mouth = (ml + mr) / 2.0 - eye_avg
    x = eye_to_eye - np.array([-eye_to_mouth[1], eye_to_mouth[0]])
    n = float(np.hypot(*x))
    if n < 1e-9:
        raise ValueError("degenerate eye/mouth landmarks")
    x = x / n * max(float(np.hypot(*eye_to_eye)) * 2.0, float(np.hypot(*eye_to_mouth)) * 1.8) * scale
    return CropQuad(eye_avg + eye_to_mouth * shift, x)


def crop_affine(quad: CropQuad, size: int) -> tuple[FloatArray, FloatArray]:
    """(frame→crop, crop→frame) 2x3 affines, continuous-pixel convention."""
    half_len = float(np.hypot(*quad.half))
    xh = quad.half / half_len
    yh = np.array([-xh[1], xh[0]])
    s = size / (2.0 * half_len)
    lin = s * np.stack([xh, yh])  # rows: crop x, crop y
    fwd = np.c_[lin, size / 2.0 - lin @ quad.centre]
    inv_lin = np.stack([xh, yh], axis=1) / s
    inv = np.c_[inv_lin, quad.centre - inv_lin @ np.array([size / 2.0, size / 2.0])]
    return fwd, inv


def to_cv(affine: FloatArray) -> FloatArray:
    """Continuous-pixel affine → OpenCV's pixel-centre convention (shift by half a pixel each side)."""
    m = affine.copy()
    m[:, 2] = affine[:, 2] + affine[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return m


def apply_affine(affine: FloatArray, points: FloatArray) -> FloatArray:
    return points[:, :2] @ affine[:, :2].T + affine[:, 2]


def invert_affine(affine: FloatArray) -> FloatArray:
    m = np.vstack([affine, [0.0, 0.0, 1.0]])
    return np.linalg.inv(m)[:2]


def warp_crop(frame: RGBImage, affine: FloatArray, size: int) -> RGBImage:
    """Resample ``frame`` through the frame→crop ``affine`` into a ``size``² crop (reflect-padded).

    When the crop shrinks the face by more than 2x, the covered region is first reduced with
    area averaging so the bilinear warp does not alias (large photos, small crops).
    """
    h, w = frame.shape[:2]
    scale = float(np.sqrt(abs(np.linalg.det(affine[:, :2]))))
    src: npt.NDArray[Any] = frame
    a = affine
    if scale < 0.5:
        inv = invert_affine(affine)
        corners = apply_affine(inv, np.array([[0, 0], [size, 0], [0, size], [size, size]], dtype=np.float64))
        x0, y0 = np.floor(corners.min(0)).astype(int) - 2
        x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, w), min(y1, h)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            roi = frame[y0:y1, x0:x1]
            k = 2.0 * scale  # keep the final warp at ~2x shrink or less; cheap and alias-free enough
            rw, rh = max(1, round((x1 - x0) * k)), max(1, round((y1 - y0) * k))
            src = cv2.resize(roi, (rw, rh), interpolation=cv2.INTER_AREA)
            kx, ky = (x1 - x0) / rw, (y1 - y0) / rh
            # crop = A · (roi_origin + diag(kx, ky) · p_small)
            a = np.c_[affine[:, :2] @ np.diag([kx, ky]), affine[:, :2] @ np.array([x0, y0]) + affine[:, 2]]
    out = cv2.warpAffine(src, to_cv(a), (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return np.asarray(out, dtype=np.uint8)
