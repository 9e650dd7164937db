"""The :class:`Face` record handed to face-aware styles (``StyleContext.faces``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.faces.align import CropQuad, check_size, crop_affine

FloatArray = npt.NDArray[np.float64]
MaskArray = npt.NDArray[np.float32]


@dataclass(eq=False)
class Face:
    """One face in one frame. Pixel coordinates are continuous (origin at the top-left corner).

    Angles follow ``engine.camera`` (degrees): head turned to the person's left ⇒ negative
    yaw; chin up ⇒ positive pitch; face rotated counter-clockwise in the image ⇒ positive roll.
    """

    bbox: tuple[float, float, float, float]
    """(x0, y0, x1, y1) of the landmarks, in pixels."""
    landmarks: FloatArray
    """(N, 2) mesh points in pixels (N = 478 with irises)."""
    depth: FloatArray
    """(N,) mesh depth in pixels, growing away from the camera (mediapipe's z)."""
    yaw: float
    pitch: float
    """Geometric pitch in degrees (``engine.camera``); chin up positive."""
    roll: float
    rotation: FloatArray
    """3x3 camera-from-head rotation (head x = person's left, y = up, z = out of the face)."""
    camera: FloatArray
    """EG3D's 25-number camera label (cam2world 4x4 then normalised intrinsics 3x3)."""
    translation: FloatArray
    """Rough head position in mm (OpenCV camera axes, 60° HFOV assumed); display only."""
    quad: CropQuad
    """The FFHQ crop square in the frame."""
    crop_size: int
    affine: FloatArray
    """2x3 frame → crop at ``crop_size``."""
    inverse: FloatArray
    """2x3 crop → frame at ``crop_size``."""
    too_small: bool = False
    """The crop square is smaller than the tracker's ``min_face_px``: found, but not edited."""
    _masks: dict[int, MaskArray] = field(default_factory=dict, repr=False)

    @property
    def n_landmarks(self) -> int:
        return int(self.landmarks.shape[0])

    @property
    def size(self) -> float:
        """Side of the crop square in frame pixels (how big the face is)."""
        return self.quad.side

    def affines(self, size: int | None = None) -> tuple[FloatArray, FloatArray]:
        """(frame→crop, crop→frame) for a crop of ``size`` (default ``crop_size``)."""
        if size is None or size == self.crop_size:
            return self.affine, self.inverse
        return crop_affine(self.quad, check_size(size))

    def feather_mask(self, size: int | None = None) -> MaskArray:
        """Soft face/head mask in crop space, ``(size, size)`` float32 in [0, 1] (cached per size)."""
        from engine.faces.paste import feather_mask

        s = self.crop_size if size is None else check_size(size)
        if s not in self._masks:
            self._masks[s] = feather_mask(self, s)
        return self._masks[s]

    def to_json(self) -> dict[str, Any]:
        return {
            "yaw": round(self.yaw, 3),
            "pitch": round(self.pitch, 3),
            "roll": round(self.roll, 3),
            "camera": [float(v) for v in self.camera],
            "bbox": [round(float(v), 2) for v in self.bbox],
            "landmarks": self.n_landmarks,
            "crop_size": self.crop_size,
            "crop_quad": [[round(float(v), 2) for v in p] for p in self.quad.corners()],
            "crop_affine": [[float(v) for v in row] for row in self.affine],
            "crop_inverse": [[float(v) for v in row] for row in self.inverse],
            "size_px": round(self.size, 2),
            "translation_mm": [round(float(v), 1) for v in self.translation],
            "too_small": self.too_small,
        }
